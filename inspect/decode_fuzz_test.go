package inspect

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/tidwall/gjson"
)

// The fuzz targets feed agent- and upstream-controlled bytes to every
// decoder. Besides "never panics", they check that failures are always a
// *DecodeError wrapping a sentinel (so the gate can turn them into a DENY
// with a reason) and that successful results can be walked.

var fuzzLimits = Limits{MaxBody: 1 << 20, MaxRatio: 50}

func requireDecodeError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("got error %T %v, want *DecodeError", err, err)
	}
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrExpansion) && !errors.Is(err, ErrUnsupportedEncoding) {
		t.Fatalf("got error %v, want one wrapping a sentinel", err)
	}
}

func FuzzDecodeBody(f *testing.F) {
	for _, tc := range bodyCases(f) {
		f.Add(tc.encoding, tc.raw)
	}
	f.Fuzz(func(t *testing.T, enc string, raw []byte) {
		out, err := DecodeBody(enc, raw, fuzzLimits)
		requireDecodeError(t, err)
		if err != nil {
			return
		}
		if int64(len(out)) > fuzzLimits.MaxBody {
			t.Fatalf("got %d bytes, over MaxBody %d", len(out), fuzzLimits.MaxBody)
		}
		if len(out) != len(raw) && int64(len(out)) > int64(len(raw))*fuzzLimits.MaxRatio {
			t.Fatalf("got %d bytes from %d, over ratio %d", len(out), len(raw), fuzzLimits.MaxRatio)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	for _, tc := range requestCases(f) {
		f.Add(tc.method, tc.url, tc.header["Content-Type"], tc.header["Content-Encoding"], tc.body)
	}
	f.Fuzz(func(t *testing.T, method, rawURL, ctype, cenc string, body []byte) {
		u, err := url.Parse(rawURL)
		if err != nil {
			u = &url.URL{Path: rawURL}
		}
		h := http.Header{}
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		if cenc != "" {
			h.Set("Content-Encoding", cenc)
		}
		r, err := DecodeRequest(method, u, h, body, fuzzLimits)
		requireDecodeError(t, err)
		if err != nil {
			return
		}
		if r.Kind == "" {
			t.Fatalf("got no kind for a decoded request")
		}
		_ = r.Fields()
		if len(r.Text()) > MaxText {
			t.Fatalf("got text over MaxText")
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	for _, tc := range responseCases(f) {
		f.Add(tc.status, tc.header["Content-Type"], tc.header["Content-Encoding"], tc.body)
	}
	f.Fuzz(func(t *testing.T, status int, ctype, cenc string, body []byte) {
		h := http.Header{}
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		if cenc != "" {
			h.Set("Content-Encoding", cenc)
		}
		r, err := DecodeResponse(status, h, body, fuzzLimits)
		requireDecodeError(t, err)
		if err != nil {
			return
		}
		if r.Kind == "" {
			t.Fatalf("got no kind for a decoded response")
		}
		_ = r.Fields()
		_ = r.Text()
	})
}

func FuzzDecodeMIME(f *testing.F) {
	for _, tc := range mimeCases {
		f.Add([]byte(tc.raw))
	}
	f.Add([]byte(sampleRFC822))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := DecodeMIME(raw)
		requireDecodeError(t, err)
		if err == nil && m == nil {
			t.Fatal("got nil message and nil error")
		}
		_, err = DecodeBase64URLMIME(string(raw))
		requireDecodeError(t, err)
	})
}

func FuzzParseGraphQL(f *testing.F) {
	for _, tc := range graphQLCases {
		f.Add(tc.query, tc.opName)
	}
	f.Fuzz(func(t *testing.T, query, opName string) {
		ops, err := ParseGraphQL(query, opName, gjson.Result{})
		requireDecodeError(t, err)
		if err != nil {
			return
		}
		if len(ops) != 1 {
			t.Fatalf("got %d operations, want 1", len(ops))
		}
		switch ops[0].Type {
		case "query", "mutation", "subscription":
		default:
			t.Fatalf("got type %q", ops[0].Type)
		}
		if len(ops[0].Fields) == 0 {
			t.Fatalf("got no root fields for %q", query)
		}
	})
}
