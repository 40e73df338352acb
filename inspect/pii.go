package inspect

import (
	"math/big"
	"regexp"
	"strings"
)

// PII detectors (issue 6): emails, E.164 phone numbers, US SSNs with the
// SSA's area/group/serial rules, payment cards with Luhn and issuer ranges,
// IBANs with mod-97, and passport numbers when labelled.

var (
	piiEmailRE      = regexp.MustCompile(`\b([A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})\b`)
	piiPhoneRE      = regexp.MustCompile(`(?:^|[^\w+])(\+[1-9](?:[ .-]?\d){7,14})\b`)
	piiSSNRE        = regexp.MustCompile(`\b(\d{3}-\d{2}-\d{4})\b`)
	piiSSNLabelRE   = regexp.MustCompile(`(?i)\b(?:ssn|social[ _-]security(?:[ _-]number)?)["']?\s*[:#=]?\s*["']?(\d{9}|\d{3} \d{2} \d{4})\b`)
	piiCardRE       = regexp.MustCompile(`\b(\d(?:[ -]?\d){12,18})\b`)
	piiIBANRE       = regexp.MustCompile(`\b([A-Z]{2}\d{2} ?(?:[A-Z0-9]{4} ?){2,7}[A-Z0-9]{1,4})\b`)
	piiPassportRE   = regexp.MustCompile(`(?i)\bpassport(?:[ _-]?(?:no|number|num|id|#))?\.?["']?\s*[:#=]?\s*["']?([A-Z0-9]{6,9})\b`)
	piiNotEmailTLDs = map[string]bool{"png": true, "jpg": true, "jpeg": true, "gif": true, "svg": true, "webp": true, "js": true, "css": true, "ts": true, "py": true, "go": true, "md": true}
)

func piiDetectors() []*dlpDetector {
	return []*dlpDetector{
		{typ: "email", category: CategoryPII, find: piiEmailFind, any: []string{"@"}, validate: piiValidateEmail},
		{typ: "phone", category: CategoryPII, find: piiPhoneFind, any: []string{"+"}, validate: piiValidatePhone},
		{typ: "ssn", category: CategoryPII, re: piiSSNRE, any: []string{"-"}, pre: piiHasSSNShape, validate: piiValidateSSN},
		{typ: "ssn", category: CategoryPII, re: piiSSNLabelRE, any: []string{"ssn", "social"}, fold: true, validate: piiValidateSSN},
		{typ: "credit_card", category: CategoryPII, find: piiCardFind, pre: piiHasDigitRun13, validate: piiValidateCard},
		{typ: "iban", category: CategoryPII, re: piiIBANRE, pre: piiHasIBANStart, validate: piiValidateIBAN},
		{typ: "passport", category: CategoryPII, re: piiPassportRE, any: []string{"passport"}, fold: true, validate: piiValidatePassport},
	}
}

func piiValidateEmail(v, text string, start int) float64 {
	// user:password@host inside a URL is credentials, not an address.
	tok := text[max(0, start-256):start]
	if i := strings.LastIndexAny(tok, " \t\r\n\"'<>(),;"); i >= 0 {
		tok = tok[i+1:]
	}
	if strings.Contains(tok, "://") {
		return 0
	}
	at := strings.LastIndexByte(v, '@')
	local, domain := v[:at], v[at+1:]
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return 0
	}
	tld := strings.ToLower(domain[strings.LastIndexByte(domain, '.')+1:])
	if piiNotEmailTLDs[tld] {
		return 0
	}
	return 0.9
}

func piiDigits(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if '0' <= v[i] && v[i] <= '9' {
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

func piiValidatePhone(v, _ string, _ int) float64 {
	if n := len(piiDigits(v)); n < 8 || n > 15 {
		return 0
	}
	return 0.6
}

// piiValidateSSN applies the SSA rules: area not 000, 666 or 9xx; group not
// 00; serial not 0000; and rejects the two numbers famously printed in
// advertising (078-05-1120, 219-09-9999).
func piiValidateSSN(v, _ string, _ int) float64 {
	d := piiDigits(v)
	if len(d) != 9 {
		return 0
	}
	area, group, serial := d[:3], d[3:5], d[5:]
	if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" || d == "078051120" || d == "219099999" {
		return 0
	}
	return 0.85
}

// luhnValid reports whether the digit string passes the Luhn checksum.
func luhnValid(d string) bool {
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return len(d) > 0 && sum%10 == 0
}

// piiCardIssuer returns the card network for a PAN, or "" when no issuer
// range of that length matches.
func piiCardIssuer(d string) string {
	n := len(d)
	p := func(k int) int {
		v := 0
		for i := 0; i < k && i < n; i++ {
			v = v*10 + int(d[i]-'0')
		}
		return v
	}
	switch {
	case d[0] == '4' && (n == 13 || n == 16 || n == 19):
		return "visa"
	case (p(2) >= 51 && p(2) <= 55 || p(4) >= 2221 && p(4) <= 2720) && n == 16:
		return "mastercard"
	case (p(2) == 34 || p(2) == 37) && n == 15:
		return "amex"
	case (p(4) == 6011 || p(3) >= 644 && p(3) <= 649 || p(2) == 65) && n >= 16 && n <= 19:
		return "discover"
	case p(4) >= 3528 && p(4) <= 3589 && n >= 16 && n <= 19:
		return "jcb"
	case (p(3) >= 300 && p(3) <= 305 || p(2) == 36 || p(2) == 38 || p(2) == 39) && n >= 14 && n <= 19:
		return "diners"
	case p(2) == 62 && n >= 16 && n <= 19:
		return "unionpay"
	}
	return ""
}

func piiValidateCard(v, _ string, _ int) float64 {
	// Separators must be consistent: all spaces, all dashes, or none.
	if strings.Contains(v, " ") && strings.Contains(v, "-") {
		return 0
	}
	d := piiDigits(v)
	if len(d) < 13 || len(d) > 19 || !luhnValid(d) || piiCardIssuer(d) == "" {
		return 0
	}
	if strings.Count(d, d[:1]) == len(d) {
		return 0
	}
	return 0.95
}

// piiIBANLengths is the IBAN length per country (ISO 13616 registry,
// common countries); unknown countries are accepted at 15..34 characters.
var piiIBANLengths = map[string]int{
	"AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28, "CZ": 24,
	"DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27, "HR": 21,
	"HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "KW": 30, "KZ": 20, "LI": 21, "LT": 20, "LU": 20,
	"LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "UA": 29,
}

// ibanValid checks length for the country and the ISO 7064 mod-97 check.
func ibanValid(iban string) bool {
	s := strings.ToUpper(strings.ReplaceAll(iban, " ", ""))
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	if want, ok := piiIBANLengths[s[:2]]; ok && want != len(s) {
		return false
	}
	r := s[4:] + s[:4]
	var num strings.Builder
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case '0' <= c && c <= '9':
			num.WriteByte(c)
		case 'A' <= c && c <= 'Z':
			num.WriteString(big.NewInt(int64(c-'A') + 10).String())
		default:
			return false
		}
	}
	// Piecewise mod 97 keeps the arithmetic in int64.
	rem := 0
	for _, c := range num.String() {
		rem = (rem*10 + int(c-'0')) % 97
	}
	return rem == 1
}

func piiValidateIBAN(v, _ string, _ int) float64 {
	if !ibanValid(v) {
		return 0
	}
	return 0.95
}

func piiValidatePassport(v, _ string, _ int) float64 {
	if piiDigits(v) == "" {
		return 0
	}
	return 0.7
}

func piiIsDigit(c byte) bool { return '0' <= c && c <= '9' }

// piiHasSSNShape reports whether s contains ddd-dd-dddd anywhere.
func piiHasSSNShape(s string) bool {
	for i := 3; i+8 <= len(s); i++ {
		if s[i] == '-' && s[i+3] == '-' && piiIsDigit(s[i-1]) && piiIsDigit(s[i-3]) && piiIsDigit(s[i+1]) && piiIsDigit(s[i+2]) && piiIsDigit(s[i+4]) {
			return true
		}
	}
	return false
}

// piiHasDigitRun13 reports whether s contains 13 digits separated by at most
// single spaces or dashes, the shortest card number.
func piiHasDigitRun13(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case piiIsDigit(c):
			n++
			if n >= 13 {
				return true
			}
		case (c == ' ' || c == '-') && n > 0 && i+1 < len(s) && piiIsDigit(s[i+1]):
		default:
			n = 0
		}
	}
	return false
}

// piiHasIBANStart reports whether s contains two capital letters followed by
// two digits.
func piiHasIBANStart(s string) bool {
	for i := 0; i+4 <= len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' && 'A' <= s[i+1] && s[i+1] <= 'Z' && piiIsDigit(s[i+2]) && piiIsDigit(s[i+3]) {
			return true
		}
	}
	return false
}

// piiEmailFind finds e-mail addresses by expanding around each '@' (the
// same language as piiEmailRE, without running an expression per '@', which
// made "a@a@a@…" inputs quadratic): a local part of up to 64 of
// [A-Za-z0-9._%+-] starting at a word boundary, and a domain of labels
// ending in a 2..24-letter TLD followed by a word boundary.
func piiEmailFind(text, _ string) [][2]int {
	isLocal := func(c byte) bool {
		return entityIsWordByte(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
	}
	isWord := func(c byte) bool { return entityIsWordByte(c) || c == '_' }
	var out [][2]int
	done := 0
	for off := 0; off < len(text); {
		i := strings.IndexByte(text[off:], '@')
		if i < 0 {
			break
		}
		at := off + i
		off = at + 1
		ls := at
		for ls > done && at-ls < 64 && isLocal(text[ls-1]) {
			ls--
		}
		// The match must start at a word boundary.
		for ls < at && !(ls == 0 && isWord(text[0]) || ls > 0 && isWord(text[ls-1]) != isWord(text[ls])) {
			ls++
		}
		if ls == at {
			continue
		}
		end := piiEmailDomainEnd(text, at+1)
		if end < 0 {
			continue
		}
		out = append(out, [2]int{ls, end})
		done, off = end, end
	}
	return out
}

// piiEmailDomainEnd returns the end of the longest valid domain starting at
// start, or -1.
func piiEmailDomainEnd(text string, start int) int {
	e := start
	for e < len(text) && e-start < 255 && (entityIsWordByte(text[e]) || text[e] == '.' || text[e] == '-') {
		e++
	}
	labels := strings.Split(text[start:e], ".")
	for n := len(labels); n >= 2; n-- {
		ok := true
		for _, l := range labels[:n-1] {
			if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
				ok = false
				break
			}
		}
		tld := labels[n-1]
		if !ok || len(tld) < 2 || len(tld) > 24 {
			continue
		}
		for k := 0; k < len(tld); k++ {
			if c := tld[k] | 0x20; c < 'a' || c > 'z' {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		end := start + len(strings.Join(labels[:n], "."))
		if end < len(text) && (entityIsWordByte(text[end]) || text[end] == '_') {
			continue
		}
		return end
	}
	return -1
}

// piiPhoneFind finds E.164-style numbers by expanding each '+' (the same
// language as piiPhoneRE, without an expression per '+'): not preceded by a
// word character or '+', a digit 1-9, then 7..14 digits each optionally
// preceded by one of " .-", ending at a word boundary.
func piiPhoneFind(text, _ string) [][2]int {
	var out [][2]int
	for off := 0; off < len(text); {
		i := strings.IndexByte(text[off:], '+')
		if i < 0 {
			break
		}
		p := off + i
		off = p + 1
		if p > 0 && (entityIsWordByte(text[p-1]) || text[p-1] == '_' || text[p-1] == '+') {
			continue
		}
		if p+1 >= len(text) || text[p+1] < '1' || text[p+1] > '9' {
			continue
		}
		j, n, best := p+2, 0, -1
		for n < 14 && j < len(text) {
			k := j
			if strings.IndexByte(" .-", text[k]) >= 0 {
				k++
			}
			if k >= len(text) || !piiIsDigit(text[k]) {
				break
			}
			j, n = k+1, n+1
			if n >= 7 && (j == len(text) || !(entityIsWordByte(text[j]) || text[j] == '_')) {
				best = j
			}
		}
		if best > 0 {
			out = append(out, [2]int{p, best})
			off = best
		}
	}
	return out
}

// piiCardFind finds card-number candidates without a regular expression
// (numbers are everywhere in JSON): the same language as piiCardRE, a digit
// at a word boundary, then 12..18 digits each optionally preceded by a
// space or dash, ending at a word boundary; the longest such run wins.
func piiCardFind(text, _ string) [][2]int {
	var out [][2]int
	isWord := func(c byte) bool { return entityIsWordByte(c) || c == '_' }
	for p := 0; p < len(text); p++ {
		if !piiIsDigit(text[p]) || (p > 0 && isWord(text[p-1])) {
			continue
		}
		j, n, best := p+1, 1, -1
		for n < 19 && j < len(text) {
			k := j
			if text[k] == ' ' || text[k] == '-' {
				k++
			}
			if k >= len(text) || !piiIsDigit(text[k]) {
				break
			}
			j, n = k+1, n+1
			if n >= 13 && (j == len(text) || !isWord(text[j])) {
				best = j
			}
		}
		if best > 0 {
			out = append(out, [2]int{p, best})
			p = best - 1
		}
	}
	return out
}
