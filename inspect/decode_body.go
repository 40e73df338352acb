package inspect

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
)

// maxCodings bounds how many content codings may be stacked on one body.
// Real clients apply one; a handful is already pathological.
const maxCodings = 4

// DecodeBody removes the content codings named by contentEncoding (the
// Content-Encoding header value, e.g. "gzip", "br" or "gzip, br"; several
// header lines may be joined with commas) from raw. Codings are undone in
// reverse order of application (RFC 9110 §8.4). "identity" and empty entries
// are no-ops. Supported: gzip (x-gzip), deflate (zlib-wrapped, or raw
// DEFLATE as some servers send it) and br.
//
// Work is bounded: raw larger than lim.MaxBody is refused with ErrTooLarge;
// output never exceeds lim.MaxBody (ErrTooLarge) nor lim.MaxRatio times
// len(raw) (ErrExpansion). A compression bomb stops at the bound, so at most
// the bound is ever allocated. Truncated or corrupt streams are ErrMalformed;
// unknown codings are ErrUnsupportedEncoding. The result may alias raw when
// there is nothing to decode.
func DecodeBody(contentEncoding string, raw []byte, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	if int64(len(raw)) > lim.MaxBody {
		return nil, decodeErr(StageBody, ErrTooLarge, "%d bytes, limit %d", len(raw), lim.MaxBody)
	}
	codings, err := parseCodings(contentEncoding)
	if err != nil {
		return nil, err
	}
	if len(codings) == 0 || len(raw) == 0 {
		return raw, nil
	}
	// The ratio bound is relative to what arrived on the wire, whatever the
	// number of stacked codings.
	bound, byRatio := lim.MaxBody, false
	if r := lim.MaxRatio; int64(len(raw)) <= lim.MaxBody/r {
		if b := int64(len(raw)) * r; b < bound {
			bound, byRatio = b, true
		}
	}
	out := raw
	for i := len(codings) - 1; i >= 0; i-- {
		out, err = decodeCoding(codings[i], out, bound, byRatio, lim)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseCodings splits a Content-Encoding value into lower-case codings,
// dropping identity and empty entries, and rejects unknown ones before any
// work is done.
func parseCodings(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []string
	for c := range strings.SplitSeq(v, ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		switch c {
		case "", "identity":
			continue
		case "gzip", "x-gzip", "deflate", "br":
			out = append(out, c)
		default:
			return nil, decodeErr(StageContentEncoding, ErrUnsupportedEncoding, "content coding %q", truncateForMsg(c))
		}
		if len(out) > maxCodings {
			return nil, decodeErr(StageContentEncoding, ErrUnsupportedEncoding, "more than %d stacked content codings", maxCodings)
		}
	}
	return out, nil
}

// decodeCoding undoes one content coding, reading at most bound+1 bytes of
// output so that exceeding the bound is detected without expanding further.
func decodeCoding(coding string, in []byte, bound int64, byRatio bool, lim Limits) ([]byte, error) {
	var (
		r   io.Reader
		err error
	)
	src := bytes.NewReader(in)
	switch coding {
	case "gzip", "x-gzip":
		var zr *gzip.Reader
		zr, err = gzip.NewReader(src)
		if err == nil {
			defer zr.Close()
			r = zr
		}
	case "deflate":
		// RFC 9110 says zlib; some servers send raw DEFLATE. A zlib stream
		// starts with a CMF/FLG pair whose 16-bit value is a multiple of 31.
		if len(in) >= 2 && in[0]&0x0f == 8 && (uint16(in[0])<<8|uint16(in[1]))%31 == 0 {
			var zr io.ReadCloser
			zr, err = zlib.NewReader(src)
			if err == nil {
				defer zr.Close()
				r = zr
			}
		} else {
			fr := flate.NewReader(src)
			defer fr.Close()
			r = fr
		}
	case "br":
		r = brotli.NewReader(src)
	}
	if err != nil {
		return nil, decodeErr(StageContentEncoding, ErrMalformed, "%s: %w", coding, err)
	}
	buf, err := readBounded(r, int(min(int64(len(in))*4, bound+1)), bound+1)
	if int64(len(buf)) > bound {
		if byRatio {
			return nil, decodeErr(StageContentEncoding, ErrExpansion, "%s expands beyond %d times its encoded size", coding, lim.MaxRatio)
		}
		return nil, decodeErr(StageContentEncoding, ErrTooLarge, "%s decodes beyond %d bytes", coding, lim.MaxBody)
	}
	if err != nil {
		return nil, decodeErr(StageContentEncoding, ErrMalformed, "%s: %w", coding, err)
	}
	return buf, nil
}

// readBounded reads r until EOF or until limit bytes have been read. The
// buffer starts at initial bytes and doubles, never past limit, so reading a
// bomb allocates about 2×limit in all. io.EOF is not an error.
func readBounded(r io.Reader, initial int, limit int64) ([]byte, error) {
	buf := make([]byte, 0, max(initial, 512))
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(int64(2*cap(buf)), limit))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// truncateForMsg keeps error messages short when they must name a value.
func truncateForMsg(s string) string {
	const n = 32
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
