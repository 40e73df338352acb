package inspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// decodeMultipart reads a multipart body. For multipart/form-data, parts
// without a filename are form fields (c.form, converted to UTF-8 by their own
// charset) and parts with one are files (c.files: name, size, SHA-256, and
// their text up to MaxFileText when they are text). For other multiparts
// (multipart/related uploads, multipart/mixed), text parts are kept as form
// fields named "part.<i>" and the rest as files. A message/rfc822 part is
// decoded into c.mime.
func (c *content) decodeMultipart(lim Limits) error {
	boundary := c.params["boundary"]
	if boundary == "" {
		return decodeErr(StageMultipart, ErrMalformed, "missing boundary parameter")
	}
	formData := c.ctype == "multipart/form-data"
	mr := multipart.NewReader(bytes.NewReader(c.body), boundary)
	form := url.Values{}
	var files []File
	for i := 0; ; i++ {
		// NextRawPart keeps Content-Transfer-Encoding visible; form-data
		// parts do not use it (RFC 7578 §4.7), other parts are decoded below.
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return decodeErr(StageMultipart, ErrMalformed, "part %d: %w", i, err)
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return decodeErr(StageMultipart, ErrMalformed, "part %d: %w", i, err)
		}
		if data, err = decodeTransferEncoding(part.Header.Get("Content-Transfer-Encoding"), data); err != nil {
			return decodeErr(StageMultipart, ErrMalformed, "part %d: %w", i, err)
		}
		var name, filename string
		if cd := part.Header.Get("Content-Disposition"); cd != "" {
			disp, params, err := mime.ParseMediaType(cd)
			if err != nil {
				return decodeErr(StageMultipart, ErrMalformed, "part %d: Content-Disposition: %w", i, err)
			}
			filename = params["filename"]
			if disp == "form-data" {
				name = params["name"]
			}
		}
		pct, pparams := parseContentType(part.Header.Get("Content-Type"))
		if pct == "message/rfc822" {
			m, err := DecodeMIME(data)
			if err != nil {
				return err
			}
			if c.mime == nil {
				c.mime = m
			}
		}
		if !formData {
			name = "part." + strconv.Itoa(i)
		}
		text := isTextPart(pct, data)
		if filename == "" && (formData || text) {
			if cs := pparams["charset"]; cs != "" {
				if data, err = toUTF8(data, cs, lim.MaxBody, StageCharset); err != nil {
					return err
				}
			}
			form.Add(name, string(data))
			continue
		}
		f := File{Field: name, Filename: filename, ContentType: pct, Size: int64(len(data)), SHA256: sha256Hex(data)}
		if text {
			f.Text = truncateUTF8(string(data), MaxFileText)
		}
		files = append(files, f)
	}
	c.kind, c.form, c.files = KindMultipart, form, files
	return nil
}

// isTextPart reports whether a part or attachment is text worth scanning.
func isTextPart(ct string, data []byte) bool {
	switch {
	case isTextType(ct), isJSONType(ct), isNDJSONType(ct), ct == "application/x-www-form-urlencoded":
		return true
	case isBinaryType(ct):
		return false
	}
	return isText(data)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// truncateUTF8 returns at most max bytes of s, cut at a rune boundary.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && i > max-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
