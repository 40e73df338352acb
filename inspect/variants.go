package inspect

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// dlpVariant is one decoded form of a field value. chain lists the decoding
// steps from the original value, "|"-separated ("base64|url"); the empty
// chain is the value as sent.
type dlpVariant struct {
	chain string
	text  string
}

// Bounds on candidate extraction inside one text.
const (
	variantMaxCandidates = 16
	variantMinBase64     = 12
	variantMinHex        = 16
	variantMinBase32     = 16
)

func variantIsB64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '_' || c == '-'
}

func variantIsB32(c byte) bool { return 'A' <= c && c <= 'Z' || '2' <= c && c <= '7' }

// variantRuns returns the maximal runs of bytes in class of at least minLen
// bytes, each followed by up to pad '=' characters.
func variantRuns(s string, class func(byte) bool, minLen, pad int) []string {
	var out []string
	for i := 0; i < len(s); {
		if !class(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && class(s[j]) {
			j++
		}
		k := j
		for k < len(s) && k-j < pad && s[k] == '=' {
			k++
		}
		if j-i >= minLen {
			out = append(out, s[i:k])
		}
		i = k
	}
	return out
}

// dlpVariants returns text and its decoded forms, breadth first, up to
// maxDepth nested decodings and dlpMaxVariants forms in all. Decodings:
// repeated URL percent-decoding ("url"), JSON string escapes ("json"),
// Unicode NFKC with confusable folding and invisible characters removed
// ("nfkc"), and base64/base64url/hex/base32 runs that decode to printable
// UTF-8 ("base64", "base64url", "hex", "base32"; each decoded run is its own
// variant).
func dlpVariants(text string, maxDepth int) []dlpVariant {
	out := []dlpVariant{{text: text}}
	seen := map[string]bool{text: true}
	level := []dlpVariant{out[0]}
	for depth := 0; depth < maxDepth && len(level) > 0; depth++ {
		var next []dlpVariant
		for _, v := range level {
			for _, c := range variantChildren(v.text) {
				if len(out) >= dlpMaxVariants {
					return out
				}
				if c.text == "" || seen[c.text] || len(c.text) > 2*len(text)+1024 {
					// Normalisation can expand text (NFKC maps some
					// characters to many); never let a variant grow
					// past twice the field.
					continue
				}
				seen[c.text] = true
				nv := dlpVariant{chain: c.chain, text: c.text}
				if v.chain != "" {
					nv.chain = v.chain + "|" + c.chain
				}
				out = append(out, nv)
				next = append(next, nv)
			}
		}
		level = next
	}
	return out
}

func variantChildren(text string) []dlpVariant {
	var out []dlpVariant
	if strings.IndexByte(text, '%') >= 0 {
		if d := variantURLDecode(text); d != text {
			out = append(out, dlpVariant{"url", d})
		}
	}
	if strings.IndexByte(text, '\\') >= 0 {
		if d := variantJSONUnescape(text); d != text {
			out = append(out, dlpVariant{"json", d})
		}
	}
	if d := variantFold(text); d != text {
		out = append(out, dlpVariant{"nfkc", d})
	}
	n := 0
	for _, m := range variantRuns(text, variantIsB64, variantMinBase64, 2) {
		if n >= variantMaxCandidates {
			break
		}
		if d, name, ok := variantBase64(m); ok {
			out = append(out, dlpVariant{name, d})
			n++
		}
	}
	for _, m := range variantRuns(text, variantIsHex, variantMinHex, 0) {
		if n >= variantMaxCandidates {
			break
		}
		if len(m)%2 == 1 {
			m = m[:len(m)-1]
		}
		if b, err := hex.DecodeString(m); err == nil && variantPrintable(b) {
			out = append(out, dlpVariant{"hex", string(b)})
			n++
		}
	}
	for _, m := range variantRuns(text, variantIsB32, variantMinBase32, 6) {
		if n >= variantMaxCandidates {
			break
		}
		if b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(m, "=")); err == nil && variantPrintable(b) {
			out = append(out, dlpVariant{"base32", string(b)})
			n++
		}
	}
	return out
}

// variantBase64 decodes a base64 or base64url run, tolerating missing
// padding and one stray trailing character.
func variantBase64(m string) (string, string, bool) {
	s := strings.TrimRight(m, "=")
	if len(s)%4 == 1 {
		s = s[:len(s)-1]
	}
	if len(s) < variantMinBase64 {
		return "", "", false
	}
	enc, name := base64.RawStdEncoding, "base64"
	if strings.ContainsAny(s, "-_") {
		if strings.ContainsAny(s, "+/") {
			return "", "", false
		}
		enc, name = base64.RawURLEncoding, "base64url"
	}
	b, err := enc.DecodeString(s)
	if err != nil || !variantPrintable(b) {
		return "", "", false
	}
	return string(b), name, true
}

// variantPrintable reports whether b is UTF-8 text worth scanning: at least
// 6 bytes and no more than 1 in 10 runes outside printable and whitespace.
func variantPrintable(b []byte) bool {
	if len(b) < 6 || !utf8.Valid(b) {
		return false
	}
	bad, total := 0, 0
	for _, r := range string(b) {
		total++
		if !unicode.IsPrint(r) && r != '\n' && r != '\r' && r != '\t' {
			bad++
		}
	}
	return bad*10 <= total
}

// variantURLDecode decodes every valid %XX escape (and leaves invalid ones),
// so that a single malformed escape cannot hide the rest. '+' is left alone:
// it is meaningful in base64.
func variantURLDecode(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && variantIsHex(s[i+1]) && variantIsHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func variantIsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// variantJSONUnescape decodes JSON string escapes (\n, \", \uXXXX including
// surrogate pairs) leniently: unknown escapes are kept as written.
func variantJSONUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		e := s[i+1]
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			r, n := variantJSONRune(s[i:])
			if n == 0 {
				b.WriteByte(c)
				continue
			}
			b.WriteRune(r)
			i += n - 1
			continue
		default:
			b.WriteByte(c)
			continue
		}
		i++
	}
	return b.String()
}

// variantJSONRune decodes "\uXXXX" (or a surrogate pair) at the start of s,
// returning the rune and the bytes consumed, or 0 bytes if invalid.
func variantJSONRune(s string) (rune, int) {
	hex4 := func(s string) (rune, bool) {
		if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(s[2:6], 16, 16)
		return rune(v), err == nil
	}
	r, ok := hex4(s)
	if !ok {
		return 0, 0
	}
	if 0xD800 <= r && r < 0xDC00 {
		if r2, ok := hex4(s[6:]); ok && 0xDC00 <= r2 && r2 < 0xE000 {
			return (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000, 12
		}
		return utf8.RuneError, 6
	}
	return r, 6
}

// variantConfusables folds common homoglyphs (Cyrillic, Greek, Latin
// lookalikes not handled by NFKC) to the ASCII letters they imitate.
var variantConfusables = map[rune]rune{
	'а': 'a', 'е': 'e', 'о': 'o', 'р': 'p', 'с': 'c', 'у': 'y', 'х': 'x', 'і': 'i', 'ј': 'j', 'ѕ': 's',
	'ԁ': 'd', 'һ': 'h', 'ԛ': 'q', 'ԝ': 'w', 'ɡ': 'g', 'ı': 'i', 'ℓ': 'l',
	'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K', 'М': 'M', 'Н': 'H', 'О': 'O', 'Р': 'P', 'С': 'C', 'Т': 'T',
	'Х': 'X', 'У': 'Y', 'І': 'I', 'Ј': 'J', 'Ѕ': 'S', 'Ԁ': 'D', 'Ԍ': 'G', 'Ԛ': 'Q', 'Ԝ': 'W',
	'α': 'a', 'ο': 'o', 'ρ': 'p', 'ν': 'v', 'ι': 'i', 'κ': 'k', 'τ': 't', 'υ': 'u', 'χ': 'x',
	'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H', 'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N', 'Ο': 'O',
	'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X',
	'‐': '-', '‑': '-', '‒': '-', '–': '-', '—': '-', '−': '-', '＿': '_',
}

// variantFold applies NFKC, drops invisible format characters (zero-width
// spaces and joiners, BOM, soft hyphen) and folds confusables.
func variantFold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	n := norm.NFKC.String(s)
	var b strings.Builder
	b.Grow(len(n))
	for _, r := range n {
		if unicode.Is(unicode.Cf, r) {
			continue
		}
		if f, ok := variantConfusables[r]; ok {
			r = f
		}
		b.WriteRune(r)
	}
	return b.String()
}

// dlpEncodings returns forms of a session secret that may appear verbatim
// in traffic without being decodable on their own: base64 (both alphabets)
// at each of the three byte alignments, hex and base32.
func dlpEncodings(secret string) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 8 && s != secret {
			for _, o := range out {
				if o == s {
					return
				}
			}
			out = append(out, s)
		}
	}
	for p := range 3 {
		b := append(make([]byte, p), secret...)
		e := base64.StdEncoding.EncodeToString(b)
		skip := 0
		if p > 0 {
			skip = 4
		}
		end := (len(b) / 3) * 4
		if end > skip {
			core := e[skip:end]
			add(core)
			add(strings.NewReplacer("+", "-", "/", "_").Replace(core))
		}
	}
	add(hex.EncodeToString([]byte(secret)))
	add(strings.ToUpper(hex.EncodeToString([]byte(secret))))
	add(strings.TrimRight(base32.StdEncoding.EncodeToString([]byte(secret)), "="))
	add(url.QueryEscape(secret))
	return out
}
