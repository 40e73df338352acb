package rules

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// ErrHTTPFile is wrapped by ParseHTTPRequestFile errors.
var ErrHTTPFile = errors.New("unreadable HTTP request file")

// httpFileMaxBytes bounds a request file.
const httpFileMaxBytes = 64 << 20

var (
	traceBlockRe  = regexp.MustCompile(`^(=>|<=) ([A-Za-z ]+?)(?:, (\d+) bytes.*)?$`)
	traceLineRe   = regexp.MustCompile(`^([0-9a-f]{4,}): ?(.*)$`)
	traceConnRe   = regexp.MustCompile(`[Cc]onnected to \S+ \(\S+\) port (\d+)`)
	requestLineRe = regexp.MustCompile(`^([A-Za-z][A-Za-z-]*) +(\S+)(?: +HTTP/[0-9.]+)?$`)
)

// ParseHTTPRequestFile reads one raw HTTP request from either
//
//   - a .http file: optional "#" or "//" comment lines, "METHOD URL
//     [HTTP/1.1]", header lines, a blank line and the body (the URL is
//     absolute, or a path with a Host header: scheme https unless the Host
//     names port 80); a "###" line ends the request;
//   - a curl --trace-ascii or --trace dump: the first "=> Send header" block
//     and the "=> Send data" blocks after it. --trace-ascii prints bytes that
//     are not printable ASCII, and lone newlines inside data, as "." — use
//     --trace (hex) when the body must be exact.
func ParseHTTPRequestFile(name string, data []byte) (method string, u *url.URL, h http.Header, body []byte, err error) {
	if len(data) > httpFileMaxBytes {
		return "", nil, nil, nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrHTTPFile, name, httpFileMaxBytes)
	}
	var head []byte
	if isCurlTrace(data) {
		var port string
		head, body, port, err = parseCurlTrace(data)
		if err != nil {
			return "", nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrHTTPFile, name, err)
		}
		method, u, h, err = parseRequestHead(head, port)
	} else {
		head, body = splitHTTPFile(data)
		method, u, h, err = parseRequestHead(head, "")
	}
	if err != nil {
		return "", nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrHTTPFile, name, err)
	}
	return method, u, h, body, nil
}

func isCurlTrace(data []byte) bool {
	for _, line := range bytes.SplitN(data, []byte("\n"), 50) {
		if bytes.HasPrefix(line, []byte("=> Send header")) {
			return true
		}
	}
	return false
}

// splitHTTPFile strips leading comments and blank lines, cuts at "###",
// and splits head from body at the first empty line.
func splitHTTPFile(data []byte) (head, body []byte) {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	lines := bytes.SplitAfter(data, []byte("\n"))
	i := 0
	for ; i < len(lines); i++ {
		t := bytes.TrimSpace(lines[i])
		if len(t) == 0 || bytes.HasPrefix(t, []byte("#")) || bytes.HasPrefix(t, []byte("//")) {
			continue
		}
		break
	}
	var hb bytes.Buffer
	for ; i < len(lines); i++ {
		if len(bytes.TrimSpace(lines[i])) == 0 {
			i++
			break
		}
		hb.Write(lines[i])
	}
	var bb bytes.Buffer
	for ; i < len(lines); i++ {
		if bytes.HasPrefix(lines[i], []byte("###")) {
			break
		}
		bb.Write(lines[i])
	}
	body = bb.Bytes()
	// The blank line before "###" and the file's final newline are layout,
	// not body.
	body = bytes.TrimRight(body, "\n")
	return hb.Bytes(), body
}

// parseCurlTrace reassembles the request head and body from a curl trace.
func parseCurlTrace(data []byte) (head, body []byte, port string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	type block struct {
		kind  string
		lines []string
	}
	var blocks []block
	var cur *block
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "== ") {
			if pm := traceConnRe.FindStringSubmatch(line); pm != nil && port == "" {
				port = pm[1]
			}
			cur = nil
			continue
		}
		if m := traceBlockRe.FindStringSubmatch(line); m != nil {
			blocks = append(blocks, block{kind: m[1] + " " + m[2]})
			cur = &blocks[len(blocks)-1]
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, "", err
	}
	var hb, bb bytes.Buffer
	state := 0 // 0 before the header, 1 in the request, 2 done
	for _, b := range blocks {
		switch {
		case b.kind == "=> Send header" && state == 0:
			if err := appendTraceBytes(&hb, b.lines, true); err != nil {
				return nil, nil, "", err
			}
			state = 1
		case b.kind == "=> Send header" && state == 1:
			state = 2
		case b.kind == "=> Send data" && state == 1:
			if err := appendTraceBytes(&bb, b.lines, false); err != nil {
				return nil, nil, "", err
			}
		}
	}
	if state == 0 {
		return nil, nil, "", errors.New("curl trace has no \"=> Send header\" block")
	}
	return hb.Bytes(), bb.Bytes(), port, nil
}

// appendTraceBytes decodes the "offset: ..." lines of one trace block. In
// --trace (hex) lines the first 48 columns are hex bytes; in --trace-ascii
// lines a gap in the offsets is where curl dropped a CRLF.
func appendTraceBytes(out *bytes.Buffer, lines []string, isHeader bool) error {
	type tl struct {
		off  int64
		text string
	}
	var tls []tl
	for _, l := range lines {
		m := traceLineRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		off, err := strconv.ParseInt(m[1], 16, 64)
		if err != nil {
			return fmt.Errorf("bad trace offset %q", m[1])
		}
		tls = append(tls, tl{off, m[2]})
	}
	if len(tls) == 0 {
		return nil
	}
	if isHexTraceLine(tls[0].text) {
		for _, t := range tls {
			hexPart := t.text
			if len(hexPart) > 48 {
				hexPart = hexPart[:48]
			}
			b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(hexPart), " ", ""))
			if err != nil {
				return fmt.Errorf("bad hex trace line at %04x", t.off)
			}
			out.Write(b)
		}
		return nil
	}
	for i, t := range tls {
		out.WriteString(t.text)
		var next int64 = -1
		if i+1 < len(tls) {
			next = tls[i+1].off
		}
		end := t.off + int64(len(t.text))
		if next < 0 {
			if isHeader {
				out.WriteString("\r\n")
			}
			continue
		}
		if next-end >= 2 {
			out.WriteString("\r\n")
		}
	}
	return nil
}

// isHexTraceLine reports whether a --trace line starts with hex byte pairs.
func isHexTraceLine(s string) bool {
	if len(s) < 3 {
		return false
	}
	for i := 0; i+2 < len(s) && i < 48; i += 3 {
		if !isHexByte(s[i]) || !isHexByte(s[i+1]) || s[i+2] != ' ' {
			return false
		}
	}
	return true
}

func isHexByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// parseRequestHead parses "METHOD URL [HTTP/x]" and header lines.
func parseRequestHead(head []byte, tracePort string) (string, *url.URL, http.Header, error) {
	text := strings.ReplaceAll(string(head), "\r\n", "\n")
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
		return "", nil, nil, errors.New("no request line")
	}
	m := requestLineRe.FindStringSubmatch(strings.TrimSpace(lines[0]))
	if m == nil {
		return "", nil, nil, fmt.Errorf("bad request line %q (want METHOD URL [HTTP/1.1])", truncateText(lines[0], 80))
	}
	method, target := strings.ToUpper(m[1]), m[2]
	h := http.Header{}
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			return "", nil, nil, fmt.Errorf("folded header line %q is not supported", truncateText(l, 80))
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(k, " \t") {
			return "", nil, nil, fmt.Errorf("bad header line %q", truncateText(l, 80))
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(k), strings.TrimSpace(v))
	}
	var u *url.URL
	var err error
	if strings.HasPrefix(target, "/") {
		host := h.Get("Host")
		if host == "" {
			return "", nil, nil, errors.New("request target is a path but there is no Host header")
		}
		scheme := "https"
		_, hp, _ := strings.Cut(host, ":")
		if hp == "80" || hp == "" && tracePort == "80" {
			scheme = "http"
		}
		u, err = url.Parse(scheme + "://" + host + target)
	} else {
		u, err = url.Parse(target)
		if err == nil && (u.Scheme == "" || u.Host == "") {
			err = errors.New("URL must be absolute or a path")
		}
	}
	if err == nil && (u.Hostname() == "" || strings.ContainsAny(u.Host, "#?/@\\ ")) {
		err = errors.New("no valid host")
	}
	if err != nil {
		return "", nil, nil, fmt.Errorf("bad URL %q: %v", truncateText(target, 80), err)
	}
	return method, u, h, nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
