package inspect

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type mimeCase struct {
	name    string
	raw     string
	want    *MIMEMessage
	wantErr error
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// mimeCases are shared with FuzzDecodeMIME as seeds.
var mimeCases = []mimeCase{
	{
		name: "encoded words UTF-8 and ISO-8859-1, B and Q",
		raw: "From: =?UTF-8?B?" + b64("Jörg Ü") + "?= <jorg@example.de>\r\n" +
			"To: =?utf-8?q?Ana_Mar=C3=ADa?= <ana@example.es>, \"Bob\" <bob@example.org>\r\n" +
			"Cc: =?ISO-8859-1?B?" + b64("Ren\xe9") + "?= <rene@example.fr>\r\n" +
			"Bcc: hidden@example.net\r\n" +
			"Subject: =?ISO-8859-1?Q?R=E9sum=E9?= and =?UTF-8?B?" + b64("Prüfung – Ω") + "?=\r\n" +
			"\r\n" +
			"plain body\r\n",
		want: &MIMEMessage{
			From: "jorg@example.de", To: []string{"ana@example.es", "bob@example.org"},
			Cc: []string{"rene@example.fr"}, Bcc: []string{"hidden@example.net"},
			Subject: "Résumé and Prüfung – Ω", Text: "plain body\r\n",
		},
	},
	{
		name: "windows-1252 encoded word via the charset index",
		raw:  "To: a@example.com\r\nSubject: =?windows-1252?Q?=93quoted=94_=80?=\r\n\r\nx",
		want: &MIMEMessage{To: []string{"a@example.com"}, Subject: "“quoted” €", Text: "x"},
	},
	{
		name: "group syntax and several To headers",
		raw:  "To: undisclosed-recipients:;\r\nTo: Team: a@x.test, b@x.test;\r\n\r\n",
		want: &MIMEMessage{To: []string{"a@x.test", "b@x.test"}},
	},
	{
		name: "alternative prefers plain, keeps html",
		raw: "To: a@x.test\r\nContent-Type: multipart/alternative; boundary=XX\r\n\r\n" +
			"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello plain\r\n" +
			"--XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello <b>html</b> &amp; more</p><script>var k='sk_live_1'</script>\r\n" +
			"--XX--\r\n",
		want: &MIMEMessage{To: []string{"a@x.test"}, Text: "hello plain", HTML: "hello html & more var k='sk_live_1'"},
	},
	{
		name: "html only, quoted-printable latin1",
		raw: "To: a@x.test\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			"<div>Caf=E9 <i>cr=E8me</i></div>=\r\n<br>end\r\n",
		want: &MIMEMessage{To: []string{"a@x.test"}, Text: "Café crème end", HTML: "Café crème end"},
	},
	{
		name: "mixed with nested alternative and attachments",
		raw: "From: me@x.test\r\nTo: you@y.test\r\nSubject: report\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n" +
			"preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
			"--inner\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64("see attached\n") + "\r\n" +
			"--inner--\r\n" +
			"--outer\r\nContent-Type: text/csv; name=\"customers.csv\"\r\nContent-Disposition: attachment; filename=\"customers.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			b64("name,email\nann,ann@x.test\n") + "\r\n" +
			"--outer\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n\r\n%PDF-1.4\x00\x01\r\n" +
			"--outer\r\nContent-Type: image/png; name=\"=?UTF-8?Q?b=C3=BCro.png?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n" +
			"--outer--\r\n",
		want: &MIMEMessage{
			From: "me@x.test", To: []string{"you@y.test"}, Subject: "report", Text: "see attached\n",
			Attachments: []File{
				{Field: "attachment", Filename: "customers.csv", ContentType: "text/csv", Size: 26, SHA256: sha256Hex([]byte("name,email\nann,ann@x.test\n")), Text: "name,email\nann,ann@x.test\n"},
				{Field: "attachment", Filename: "résumé.pdf", ContentType: "application/pdf", Size: 10, SHA256: sha256Hex([]byte("%PDF-1.4\x00\x01"))},
				{Field: "attachment", Filename: "büro.png", ContentType: "image/png", Size: 6, SHA256: sha256Hex([]byte("\x89PNG\r\n"))},
			},
		},
	},
	{name: "no headers", raw: "just some text without a header\r\n", wantErr: ErrMalformed},
	{name: "bad To", raw: "To: <<<nope\r\n\r\nx", wantErr: ErrMalformed},
	{name: "bad From", raw: "From: @@\r\n\r\nx", wantErr: ErrMalformed},
	{name: "unknown charset in subject", raw: "Subject: =?x-klingon?Q?abc?=\r\n\r\nx", wantErr: ErrMalformed},
	{name: "unknown body charset", raw: "Content-Type: text/plain; charset=x-klingon\r\n\r\nx", wantErr: ErrUnsupportedEncoding},
	{name: "multipart without boundary", raw: "Content-Type: multipart/mixed\r\n\r\nx", wantErr: ErrMalformed},
	{name: "truncated multipart", raw: "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello", wantErr: ErrMalformed},
	{name: "bad base64 part", raw: "Content-Transfer-Encoding: base64\r\n\r\n!!!!", wantErr: ErrMalformed},
	{name: "unknown transfer encoding", raw: "Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin", wantErr: ErrUnsupportedEncoding},
	{name: "too deep", raw: nestedMultipart(20), wantErr: ErrMalformed},
	{name: "deep but within bound", raw: nestedMultipart(10), want: &MIMEMessage{Text: "leaf"}},
}

func TestDecodeMIME(t *testing.T) {
	t.Parallel()
	for _, tc := range mimeCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeMIME([]byte(tc.raw))
			checkDecodeErr(t, err, tc.wantErr, StageMIME)
			if tc.wantErr != nil {
				return
			}
			if tc.want.HTML == "" {
				tc.want.HTML = got.HTML // only asserted where the case names it
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeBase64URLMIME(t *testing.T) {
	t.Parallel()
	msg := "To: a@x.test\r\nSubject: =?UTF-8?B?" + b64("¿qué?") + "?=\r\n\r\nbody ~~~ ???"
	cases := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "base64url unpadded", in: base64.RawURLEncoding.EncodeToString([]byte(msg))},
		{name: "base64url padded", in: base64.URLEncoding.EncodeToString([]byte(msg))},
		{name: "standard alphabet", in: base64.StdEncoding.EncodeToString([]byte(msg))},
		{name: "wrapped lines", in: wrap(base64.URLEncoding.EncodeToString([]byte(msg)), 76)},
		{name: "mixed alphabets", in: "ab-_cd+/", wantErr: true},
		{name: "not base64", in: "$$$$", wantErr: true},
		{name: "truncated", in: base64.RawURLEncoding.EncodeToString([]byte(msg))[:5], wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := DecodeBase64URLMIME(tc.in)
			if tc.wantErr {
				checkDecodeErr(t, err, ErrMalformed, StageMIME)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if m.Subject != "¿qué?" || !cmp.Equal(m.To, []string{"a@x.test"}) || m.Text != "body ~~~ ???" {
				t.Errorf("got %+v, want subject ¿qué?, To a@x.test, the body", m)
			}
		})
	}
}

// nestedMultipart returns a message whose multiparts nest n deep.
func nestedMultipart(n int) string {
	var sb strings.Builder
	for i := range n {
		b := "b" + itoa(i)
		sb.WriteString("Content-Type: multipart/mixed; boundary=" + b + "\r\n\r\n--" + b + "\r\n")
	}
	sb.WriteString("Content-Type: text/plain\r\n\r\nleaf")
	for i := n - 1; i >= 0; i-- {
		sb.WriteString("\r\n--b" + itoa(i) + "--\r\n")
	}
	return sb.String()
}

func wrap(s string, n int) string {
	var sb strings.Builder
	for len(s) > n {
		sb.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	sb.WriteString(s)
	return sb.String()
}

// TestDecodeMIMECorpus decodes the messages under testdata/decode/mime: each
// NAME.eml must decode without error and its recipients must equal the
// NAME.to file (one address a line).
func TestDecodeMIMECorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("testdata", "decode", "mime", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("got no corpus files, want some")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wantTo, err := os.ReadFile(strings.TrimSuffix(f, ".eml") + ".to")
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeMIME(raw)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			got := append(append(append([]string{}, m.To...), m.Cc...), m.Bcc...)
			if diff := cmp.Diff(strings.Fields(string(wantTo)), got); diff != "" {
				t.Errorf("recipients (-want +got):\n%s", diff)
			}
			if m.Text == "" {
				t.Errorf("got empty text, want the body")
			}
		})
	}
}
