package inspect

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/text/encoding/htmlindex"
)

// DecodeBase64URLMIME decodes a Gmail-style "raw" message: base64url (RFC
// 4648 §5) with or without padding (standard base64 is accepted too, and line
// breaks are ignored), then DecodeMIME.
func DecodeBase64URLMIME(s string) (*MIMEMessage, error) {
	b, err := decodeBase64Loose(s)
	if err != nil {
		return nil, decodeErr(StageMIME, ErrMalformed, "raw message is not base64url: %w", err)
	}
	return DecodeMIME(b)
}

// decodeBase64Loose decodes base64url or standard base64, padded or not,
// ignoring CR, LF, spaces and tabs.
func decodeBase64Loose(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n \t") {
		s = strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, s)
	}
	s = strings.TrimRight(s, "=")
	url := strings.ContainsAny(s, "-_")
	std := strings.ContainsAny(s, "+/")
	switch {
	case url && std:
		return nil, errors.New("mixes base64 and base64url alphabets")
	case std:
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// DecodeMIME parses an RFC 5322 message: From, To, Cc, Bcc (bare addresses)
// and Subject with RFC 2047 encoded words decoded (any charset the WHATWG
// encoding index knows), the body text (text/plain preferred, else text/html
// stripped of tags; both are kept, see MIMEMessage.HTML), and attachments
// (name, type, size, SHA-256 and, for text, content up to MaxFileText).
// Nested multiparts are walked up to a fixed depth. Anything that does not
// parse — headers, address lists, multipart structure, transfer encodings,
// charsets — is a *DecodeError at stage "mime": recipients the gate cannot
// read are recipients it cannot judge.
func DecodeMIME(raw []byte) (*MIMEMessage, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, decodeErr(StageMIME, ErrMalformed, "header: %w", err)
	}
	wd := &mime.WordDecoder{CharsetReader: charsetReader}
	m := &MIMEMessage{}
	if m.Subject, err = decodeHeaderWords(wd, msg.Header["Subject"]); err != nil {
		return nil, decodeErr(StageMIME, ErrMalformed, "Subject: %w", err)
	}
	from, err := parseAddressHeader(wd, msg.Header["From"])
	if err != nil {
		return nil, decodeErr(StageMIME, ErrMalformed, "From: %w", err)
	}
	m.From = strings.Join(from, ", ")
	if m.To, err = parseAddressHeader(wd, msg.Header["To"]); err != nil {
		return nil, decodeErr(StageMIME, ErrMalformed, "To: %w", err)
	}
	if m.Cc, err = parseAddressHeader(wd, msg.Header["Cc"]); err != nil {
		return nil, decodeErr(StageMIME, ErrMalformed, "Cc: %w", err)
	}
	if m.Bcc, err = parseAddressHeader(wd, msg.Header["Bcc"]); err != nil {
		return nil, decodeErr(StageMIME, ErrMalformed, "Bcc: %w", err)
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return nil, decodeErr(StageMIME, ErrMalformed, "body: %w", err)
	}
	w := mimeWalker{wd: wd}
	if err := w.walk(map[string][]string(msg.Header), body, 0); err != nil {
		return nil, err
	}
	m.Text = strings.Join(w.plain, "\n")
	m.HTML = strings.Join(w.html, "\n")
	if m.Text == "" {
		m.Text = m.HTML
	}
	m.Attachments = w.attachments
	return m, nil
}

// charsetReader lets mime.WordDecoder decode any WHATWG-known charset.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(strings.ToLower(charset))
	if err != nil {
		return nil, fmt.Errorf("%w: charset %q", ErrUnsupportedEncoding, truncateForMsg(charset))
	}
	return enc.NewDecoder().Reader(input), nil
}

func decodeHeaderWords(wd *mime.WordDecoder, values []string) (string, error) {
	out := make([]string, 0, len(values))
	for _, v := range values {
		d, err := wd.DecodeHeader(v)
		if err != nil {
			return "", err
		}
		out = append(out, d)
	}
	return strings.Join(out, "\n"), nil
}

// parseAddressHeader parses every instance of an address-list header into
// bare addresses.
func parseAddressHeader(wd *mime.WordDecoder, values []string) ([]string, error) {
	var out []string
	p := mail.AddressParser{WordDecoder: wd}
	for _, v := range values {
		if strings.TrimSpace(v) == "" {
			continue
		}
		list, err := p.ParseList(v)
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			out = append(out, a.Address)
		}
	}
	return out, nil
}

// mimeWalker collects body text and attachments from a MIME tree.
type mimeWalker struct {
	wd          *mime.WordDecoder
	plain, html []string
	attachments []File
}

func headerGet(h map[string][]string, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (w *mimeWalker) walk(h map[string][]string, body []byte, depth int) error {
	ct, params := parseContentType(headerGet(h, "Content-Type"))
	if ct == "" {
		ct, params = "text/plain", nil // RFC 2045 §5.2
	}
	if strings.HasPrefix(ct, "multipart/") {
		if depth >= maxMIMEDepth {
			return decodeErr(StageMIME, ErrMalformed, "multiparts nested deeper than %d", maxMIMEDepth)
		}
		boundary := params["boundary"]
		if boundary == "" {
			return decodeErr(StageMIME, ErrMalformed, "%s without boundary", ct)
		}
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		for i := 0; ; i++ {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return decodeErr(StageMIME, ErrMalformed, "part %d: %w", i, err)
			}
			data, err := io.ReadAll(p)
			if err != nil {
				return decodeErr(StageMIME, ErrMalformed, "part %d: %w", i, err)
			}
			if err := w.walk(p.Header, data, depth+1); err != nil {
				return err
			}
		}
	}
	data, err := decodeTransferEncoding(headerGet(h, "Content-Transfer-Encoding"), body)
	if err != nil {
		return decodeErr(StageMIME, ErrMalformed, "%w", err)
	}
	var disp, filename string
	if cd := headerGet(h, "Content-Disposition"); cd != "" {
		var dparams map[string]string
		disp, dparams, err = mime.ParseMediaType(cd)
		if err != nil {
			return decodeErr(StageMIME, ErrMalformed, "Content-Disposition: %w", err)
		}
		filename = dparams["filename"]
	}
	if filename == "" {
		filename = params["name"]
	}
	if filename != "" {
		// Encoded words in filenames are not standard but common.
		if d, err := w.wd.DecodeHeader(filename); err == nil {
			filename = d
		}
	}
	inline := disp != "attachment" && filename == ""
	if inline && (ct == "text/plain" || ct == "text/html") {
		if cs := params["charset"]; cs != "" {
			if data, err = toUTF8(data, cs, int64(4*len(data)+1024), StageMIME); err != nil {
				return err
			}
		}
		if ct == "text/plain" {
			w.plain = append(w.plain, string(data))
		} else {
			w.html = append(w.html, htmlText(data))
		}
		return nil
	}
	f := File{Field: "attachment", Filename: filename, ContentType: ct, Size: int64(len(data)), SHA256: sha256Hex(data)}
	if isTextPart(ct, data) {
		f.Text = truncateUTF8(string(data), MaxFileText)
	}
	w.attachments = append(w.attachments, f)
	return nil
}

// decodeTransferEncoding undoes a Content-Transfer-Encoding (RFC 2045 §6).
func decodeTransferEncoding(cte string, data []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return data, nil
	case "base64":
		b, err := decodeBase64Loose(string(data))
		if err != nil {
			return nil, fmt.Errorf("base64 transfer encoding: %w", err)
		}
		return b, nil
	case "quoted-printable":
		b, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(data)))
		if err != nil {
			return nil, fmt.Errorf("quoted-printable transfer encoding: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: transfer encoding %q", ErrUnsupportedEncoding, truncateForMsg(cte))
}

// htmlText returns the text of an HTML document: every text node, entities
// decoded, white space collapsed. Script and style text is kept: it leaves
// with the message whether or not a mail client shows it.
func htmlText(b []byte) string {
	z := html.NewTokenizer(bytes.NewReader(b))
	var sb strings.Builder
	for {
		switch z.Next() {
		case html.ErrorToken:
			return strings.Join(strings.Fields(sb.String()), " ")
		case html.TextToken:
			sb.Write(z.Text())
			sb.WriteByte(' ')
		}
	}
}
