package rules

import (
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHTTPRequestFile(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		data   string
		method string
		url    string
		header http.Header
		body   string
	}{
		{"absolute url", "POST https://api.example.com/a?b=1 HTTP/1.1\nContent-Type: application/json\n\n{\"x\":1}\n",
			"POST", "https://api.example.com/a?b=1", http.Header{"Content-Type": {"application/json"}}, `{"x":1}`},
		{"comments and no version", "# note\n// another\n\nget https://x.example/\n",
			"GET", "https://x.example/", http.Header{}, ""},
		{"path and host", "DELETE /r/1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
			"DELETE", "https://api.example.com/r/1", http.Header{"Host": {"api.example.com"}}, ""},
		{"port 80 is http", "GET /r HTTP/1.1\nHost: h.example:80\n",
			"GET", "http://h.example:80/r", http.Header{"Host": {"h.example:80"}}, ""},
		{"separator ends request", "POST https://a.example/x\n\nbody\n\n### next\nGET https://b.example/\n",
			"POST", "https://a.example/x", http.Header{}, "body"},
		{"trace ascii", "== Info: Connected to h.example (1.2.3.4) port 80\n=> Send header, 10 bytes (0xa)\n0000: PUT /k HTTP/1.1\n0011: Host: h.example\n0022: X-Long: " +
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n0062: bbbb\n0068: \n=> Send data, 3 bytes (0x3)\n0000: abc\n<= Recv header, 2 bytes\n0000: HTTP/1.1 200 OK\n",
			"PUT", "http://h.example/k", http.Header{"Host": {"h.example"}, "X-Long": {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbb"}}, "abc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, u, h, body, err := ParseHTTPRequestFile(tc.name, []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if m != tc.method || u.String() != tc.url || string(body) != tc.body {
				t.Errorf("got %s %s body %q, want %s %s body %q", m, u, body, tc.method, tc.url, tc.body)
			}
			if diff := cmp.Diff(tc.header, h); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "\n\n", "NOT A REQUEST LINE AT ALL\n", "GET /path-without-host\n", "GET https://h/\nBad Header\n", "=> Send header, 1 bytes\n"} {
		if _, _, _, _, err := ParseHTTPRequestFile("bad", []byte(bad)); !errors.Is(err, ErrHTTPFile) {
			t.Errorf("ParseHTTPRequestFile(%q): got %v, want ErrHTTPFile", bad, err)
		}
	}
}

func FuzzParseHTTPRequestFile(f *testing.F) {
	f.Add([]byte("POST https://api.example.com/a HTTP/1.1\nContent-Type: application/json\n\n{}\n"))
	f.Add([]byte("DELETE /r/1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n"))
	f.Add([]byte("=> Send header, 10 bytes (0xa)\n0000: 50 55 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a PUT / HTTP/1.1..\n0010: 48 6f 73 74 3a 20 68 0d 0a 0d 0a Host: h....\n"))
	f.Add([]byte("=> Send header, 10 bytes (0xa)\n0000: PUT /k HTTP/1.1\n0011: Host: h.example\n=> Send data, 3 bytes\n0000: abc\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, u, h, _, err := ParseHTTPRequestFile("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrHTTPFile) {
				t.Fatalf("error %v does not wrap ErrHTTPFile", err)
			}
			return
		}
		if m == "" || u == nil || u.Host == "" || h == nil {
			t.Fatalf("success without a request: %q %v %v", m, u, h)
		}
	})
}
