// Package canonjson writes the RFC 8785 JSON Canonicalization Scheme (JCS)
// form of a JSON text in one pass and with few allocations.
//
// The ledger signs RFC 8785 bytes of every receipt (docs/receipts.md §2).
// github.com/gowebpki/jcs is the reference implementation and stays the one
// that verification uses; this package exists because jcs builds a tree of
// strings per call and cost the append path about as much as signing did
// (issue 5). Its contract is byte equality with jcs.Transform: for every
// input either both succeed with identical output or both fail. The tests
// check that against the RFC's examples, exhaustive number and string cases
// and a fuzz target.
//
// SPEC: https://www.rfc-editor.org/rfc/rfc8785 (§3.2.2 serialisation of
// primitives, §3.2.3 member sorting by UTF-16 code units).
package canonjson

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// MaxDepth is the deepest nesting of arrays and objects accepted, the same
// bound jcs applies.
const MaxDepth = 10000

// ErrInvalid is wrapped by every error Append returns: the input is not JSON
// that RFC 8785 can canonicalise (syntax, invalid UTF-8, a lone surrogate,
// a duplicate member name, a number outside IEEE 754 double range, nesting
// deeper than MaxDepth).
var ErrInvalid = errors.New("canonjson: invalid JSON")

// Append appends the RFC 8785 canonical form of the JSON text src to dst and
// returns the extended slice. On error dst's contents beyond its original
// length are unspecified.
func Append(dst, src []byte) ([]byte, error) {
	if src == nil {
		return dst, fmt.Errorf("%w: no data", ErrInvalid)
	}
	s := statePool.Get().(*state)
	defer s.release()
	s.src, s.dst = src, dst
	if err := s.value(); err != nil {
		return dst, err
	}
	for ; s.i < len(src); s.i++ {
		if !isSpace(src[s.i]) {
			return dst, s.errorf("data after the top-level value")
		}
	}
	return s.dst, nil
}

var statePool = sync.Pool{New: func() any { return &state{members: make([]member, 0, 64)} }}

// release returns s to the pool, dropping references to caller memory and
// buffers grown by an unusually large document.
func (s *state) release() {
	s.src, s.dst, s.i, s.depth = nil, nil, 0, 0
	s.members, s.keys, s.scratch = s.members[:0], s.keys[:0], s.scratch[:0]
	if cap(s.members) > 1<<12 || cap(s.keys) > 1<<16 || cap(s.scratch) > 1<<16 {
		return
	}
	statePool.Put(s)
}

// member is one parsed object member: where its decoded name is in
// state.keys (for sorting) and the span of `"name":value` in dst. It holds
// no pointers, so sorting it costs no write barriers.
type member struct {
	key, keyEnd int
	start, end  int
}

type state struct {
	src     []byte
	i       int
	dst     []byte
	depth   int
	members []member // a stack shared by nested objects
	keys    []byte   // decoded member names, a stack like members
	scratch []byte   // reordering buffer, free between objects
}

func (s *state) key(m member) []byte { return s.keys[m.key:m.keyEnd] }

func (s *state) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", ErrInvalid, s.i, fmt.Sprintf(format, args...))
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// next skips whitespace and returns the next byte without consuming it.
// Outside strings only ASCII is valid.
func (s *state) next() (byte, error) {
	for s.i < len(s.src) && isSpace(s.src[s.i]) {
		s.i++
	}
	if s.i >= len(s.src) {
		return 0, s.errorf("unexpected end of data")
	}
	c := s.src[s.i]
	if c >= utf8.RuneSelf {
		return 0, s.errorf("unexpected non-ASCII byte 0x%02x", c)
	}
	return c, nil
}

// expect consumes c after optional whitespace.
func (s *state) expect(c byte) error {
	got, err := s.next()
	if err != nil {
		return err
	}
	if got != c {
		return s.errorf("want %q, got %q", c, got)
	}
	s.i++
	return nil
}

func (s *state) value() error {
	c, err := s.next()
	if err != nil {
		return err
	}
	switch c {
	case '{':
		s.i++
		return s.object()
	case '[':
		s.i++
		return s.array()
	case '"':
		s.i++
		return s.str(false)
	}
	return s.literal()
}

func (s *state) enter() error {
	s.depth++
	if s.depth > MaxDepth {
		return s.errorf("nesting deeper than %d", MaxDepth)
	}
	return nil
}

func (s *state) array() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.dst = append(s.dst, '[')
	for n := 0; ; n++ {
		c, err := s.next()
		if err != nil {
			return err
		}
		if c == ']' {
			s.i++
			break
		}
		if n > 0 {
			if err := s.expect(','); err != nil {
				return err
			}
			s.dst = append(s.dst, ',')
		}
		if err := s.value(); err != nil {
			return err
		}
	}
	s.dst = append(s.dst, ']')
	s.depth--
	return nil
}

func (s *state) object() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.dst = append(s.dst, '{')
	body := len(s.dst)
	base, keysBase := len(s.members), len(s.keys)
	for n := 0; ; n++ {
		c, err := s.next()
		if err != nil {
			return err
		}
		if c == '}' {
			s.i++
			break
		}
		if n > 0 {
			if err := s.expect(','); err != nil {
				return err
			}
			s.dst = append(s.dst, ',')
		}
		if err := s.expect('"'); err != nil {
			return err
		}
		start, key := len(s.dst), len(s.keys)
		if err := s.str(true); err != nil {
			return err
		}
		keyEnd := len(s.keys)
		if err := s.expect(':'); err != nil {
			return err
		}
		s.dst = append(s.dst, ':')
		if err := s.value(); err != nil {
			return err
		}
		s.members = append(s.members, member{key: key, keyEnd: keyEnd, start: start, end: len(s.dst)})
	}
	ms := s.members[base:]
	sorted := true
	for j := 1; j < len(ms); j++ {
		if c := compareUTF16(s.key(ms[j-1]), s.key(ms[j])); c == 0 {
			return s.errorf("duplicate member name %q", s.key(ms[j]))
		} else if c > 0 {
			sorted = false
		}
	}
	if !sorted {
		slices.SortFunc(ms, func(a, b member) int { return compareUTF16(s.key(a), s.key(b)) })
		for j := 1; j < len(ms); j++ {
			if compareUTF16(s.key(ms[j-1]), s.key(ms[j])) == 0 {
				return s.errorf("duplicate member name %q", s.key(ms[j]))
			}
		}
		// Every nested object is finished, so scratch is free.
		s.scratch = append(s.scratch[:0], s.dst[body:]...)
		s.dst = s.dst[:body]
		for j, m := range ms {
			if j > 0 {
				s.dst = append(s.dst, ',')
			}
			s.dst = append(s.dst, s.scratch[m.start-body:m.end-body]...)
		}
	}
	s.keys = s.keys[:keysBase]
	s.members = s.members[:base]
	s.dst = append(s.dst, '}')
	s.depth--
	return nil
}

// compareUTF16 orders two UTF-8 strings by their UTF-16 code units (RFC 8785
// §3.2.3). Byte order is code point order, which differs from UTF-16 order
// only between a supplementary character (a surrogate pair, 0xD800...) and a
// BMP character at or above U+E000; the first differing characters decide.
func compareUTF16(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		return len(a) - len(b)
	}
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRune(a[i:])
	rb, _ := utf8.DecodeRune(b[i:])
	if ua, ub := firstUnit(ra), firstUnit(rb); ua != ub {
		return int(ua) - int(ub)
	}
	return int(ra) - int(rb)
}

// firstUnit is the first UTF-16 code unit of r.
func firstUnit(r rune) rune {
	if r >= 0x10000 {
		return 0xD800 + (r-0x10000)>>10
	}
	return r
}

// str reads a string whose opening quote is consumed and writes its
// canonical form to dst. With wantKey it also appends the decoded value to
// s.keys.
func (s *state) str(wantKey bool) error {
	s.dst = append(s.dst, '"')
	for {
		run := s.i
		for s.i < len(s.src) {
			c := s.src[s.i]
			if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			s.i++
		}
		s.dst = append(s.dst, s.src[run:s.i]...)
		if wantKey {
			s.keys = append(s.keys, s.src[run:s.i]...)
		}
		if s.i >= len(s.src) {
			return s.errorf("unterminated string")
		}
		c := s.src[s.i]
		switch {
		case c == '"':
			s.i++
			s.dst = append(s.dst, '"')
			return nil
		case c < 0x20:
			return s.errorf("control character 0x%02x in string", c)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(s.src[s.i:])
			if r == utf8.RuneError && size <= 1 {
				return s.errorf("invalid UTF-8 byte 0x%02x in string", c)
			}
			s.dst = append(s.dst, s.src[s.i:s.i+size]...)
			if wantKey {
				s.keys = append(s.keys, s.src[s.i:s.i+size]...)
			}
			s.i += size
		default: // backslash
			r, err := s.escape()
			if err != nil {
				return err
			}
			s.dst = appendRune(s.dst, r)
			if wantKey {
				s.keys = utf8.AppendRune(s.keys, r)
			}
		}
	}
}

// escape decodes the escape sequence at s.i (a backslash).
func (s *state) escape() (rune, error) {
	if s.i+1 >= len(s.src) {
		return 0, s.errorf("unterminated escape")
	}
	c := s.src[s.i+1]
	s.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, s.errorf("invalid escape \\%c", c)
	}
	r, err := s.hex4()
	if err != nil {
		return 0, err
	}
	if r < 0xD800 || r > 0xDFFF {
		return r, nil
	}
	if r > 0xDBFF {
		return 0, s.errorf("lone low surrogate \\u%04x", r)
	}
	if s.i+1 >= len(s.src) || s.src[s.i] != '\\' || s.src[s.i+1] != 'u' {
		return 0, s.errorf("high surrogate \\u%04x without a low surrogate", r)
	}
	s.i += 2
	lo, err := s.hex4()
	if err != nil {
		return 0, err
	}
	if lo < 0xDC00 || lo > 0xDFFF {
		return 0, s.errorf("high surrogate \\u%04x followed by \\u%04x", r, lo)
	}
	return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), nil
}

func (s *state) hex4() (rune, error) {
	if s.i+4 > len(s.src) {
		return 0, s.errorf("short \\u escape")
	}
	var r rune
	for _, c := range s.src[s.i : s.i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, s.errorf("invalid \\u escape")
		}
	}
	s.i += 4
	return r, nil
}

const hexDigits = "0123456789abcdef"

// appendRune writes r inside a canonical string (RFC 8785 §3.2.2.2): the
// two-character escapes for quote, backslash and \b \f \n \r \t, \u00xx
// (lowercase) for the other control characters, and everything else as
// UTF-8.
func appendRune(dst []byte, r rune) []byte {
	switch r {
	case '"', '\\':
		return append(dst, '\\', byte(r))
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	if r < 0x20 {
		return append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
	}
	return utf8.AppendRune(dst, r)
}

// literal reads true, false, null or a number. Like jcs it takes the token
// up to the next delimiter and then checks it.
func (s *state) literal() error {
	start := s.i
	for s.i < len(s.src) {
		c := s.src[s.i]
		if c == ',' || c == ']' || c == '}' || isSpace(c) {
			break
		}
		if c >= utf8.RuneSelf {
			return s.errorf("unexpected non-ASCII byte 0x%02x", c)
		}
		s.i++
	}
	tok := s.src[start:s.i]
	switch string(tok) {
	case "":
		return s.errorf("missing value")
	case "true", "false", "null":
		s.dst = append(s.dst, tok...)
		return nil
	}
	integer, ok := scanNumber(tok)
	if !ok {
		return s.errorf("invalid literal or number %.32q", tok)
	}
	// Integers of up to 15 digits are exact doubles and ECMAScript prints
	// them as they are (apart from -0).
	if integer && len(tok) <= 15 {
		if string(tok) == "-0" {
			s.dst = append(s.dst, '0')
		} else {
			s.dst = append(s.dst, tok...)
		}
		return nil
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return s.errorf("number out of range %.32q", tok)
	}
	s.dst, err = AppendFloat(s.dst, f)
	if err != nil {
		return s.errorf("%v", err)
	}
	return nil
}

// scanNumber checks the JSON number grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and reports whether the
// number is an integer (no fraction, no exponent).
func scanNumber(b []byte) (integer, ok bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return false, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return false, false
		}
	}
	return integer, i == len(b)
}

// AppendFloat appends f formatted as ECMAScript's Number.prototype.toString
// does (RFC 8785 §3.2.2.3): the shortest digits that round-trip, in plain
// notation for 1e-6 <= |f| < 1e21 and otherwise as d[.ddd]e±n; -0 is 0.
// NaN and infinities are errors.
func AppendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("%w: %v is not a JSON number", ErrInvalid, f)
	}
	if f == 0 {
		return append(dst, '0'), nil
	}
	format := byte('e')
	if abs := math.Abs(f); abs >= 1e-6 && abs < 1e21 {
		format = 'f'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Go writes at least two exponent digits ("1e-07"); ECMAScript
		// writes no leading zero ("1e-7").
		if n := len(dst); dst[n-4] == 'e' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// CompareKeys orders member names as RFC 8785 sorts them: by their UTF-16
// code units.
func CompareKeys(a, b string) int {
	return compareUTF16(unsafeBytes(a), unsafeBytes(b))
}

func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// AppendString appends s as an RFC 8785 string: quoted, with the
// two-character escapes and \u00xx for control characters, everything else
// as UTF-8. Invalid UTF-8 becomes U+FFFD, as encoding/json writes it.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			j := i
			for j < len(s) && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\' && s[j] < utf8.RuneSelf {
				j++
			}
			if j > i {
				dst = append(dst, s[i:j]...)
				i = j
				continue
			}
			dst = appendRune(dst, rune(c))
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// ValidKey returns s as encoding/json writes a member name (invalid UTF-8
// replaced by U+FFFD), for sorting and duplicate checks.
func ValidKey(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
