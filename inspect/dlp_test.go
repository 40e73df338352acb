package inspect

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// dlpTestGitHub returns a classic GitHub token with a valid checksum.
func dlpTestGitHub(prefix, random string) string {
	return prefix + "_" + random + secretBase62CRC(random)
}

func dlpTypes(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		if !slices.Contains(out, f.Type) {
			out = append(out, f.Type)
		}
	}
	slices.Sort(out)
	return out
}

// pctAll percent-encodes every byte, as an attacker hiding a value would.
func pctAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// jsonEscAll writes every rune as a \uXXXX escape.
func jsonEscAll(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

const (
	dlpTestAWSKeyID  = "AKIA2E3MRZ7LQ5VXKW4P"
	dlpTestAWSSecret = "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"
	dlpTestJWT       = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	dlpTestPEM       = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\naFDrBz9vFqU4yXq0Ba2mvJv4H7o2HnDCOGZNw8Nsmrm3MSzHCoVR/2lMNGrcH+Go\n-----END RSA PRIVATE KEY-----"
)

func TestScanDetectors(t *testing.T) {
	t.Parallel()
	gh := dlpTestGitHub("ghp", "R4nd0mT0kenValueABCDEFGHIJKLMN")
	npm := dlpTestGitHub("npm", "Zy9xW8vU7tS6rQ5pO4nM3lK2jI1hGf")
	badGH := gh[:len(gh)-1] + string(rune(gh[len(gh)-1])^1)
	tests := []struct {
		name  string
		value string
		want  []string
	}{
		{"aws key id", "key=" + dlpTestAWSKeyID, []string{"aws_access_key_id"}},
		{"aws key id too short", "AKIA2E3MRZ7LQ5VX", nil},
		{"aws documentation key id", "AKIAIOSFODNN7EXAMPLE", []string{"aws_access_key_id"}},
		{"aws secret labelled low entropy", "aws_secret_access_key=" + strings.Repeat("Ab1", 13) + "A", nil},
		{"aws key id lower case", strings.ToLower(dlpTestAWSKeyID), nil},
		{"aws secret labelled", `aws_secret_access_key = "` + dlpTestAWSSecret + `"`, []string{"aws_secret_access_key"}},
		{"aws secret near key id", dlpTestAWSKeyID + " " + dlpTestAWSSecret, []string{"aws_access_key_id", "aws_secret_access_key"}},
		{"aws secret alone unlabelled", "blob " + dlpTestAWSSecret + " end", nil},
		{"github classic checksum ok", "token " + gh, []string{"github_token"}},
		{"github classic checksum bad", "token " + badGH, nil},
		{"github fine grained", "github_pat_11ABCDEFG0abcdefghijkl_" + strings.Repeat("aB3", 19) + "xy", []string{"github_token"}},
		{"github fine grained wrong shape", "github_pat_short_token", nil},
		{"gitlab", "glpat-xK9mN2pQ7rS4tU1vW8yZ", []string{"gitlab_token"}},
		{"gitlab prefix only", "glpat-short", nil},
		{"slack bot token", "xoxb-1234567890-9876543210-AbCdEfGhIjKlMnOpQrStUvWx", []string{"slack_token"}},
		{"slack word", "xoxo-hugs-and-kisses", nil},
		{"slack webhook", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", []string{"slack_webhook"}},
		{"slack webhook docs page", "https://hooks.slack.com/", nil},
		{"openai legacy", "sk-" + "AbCdEfGhIjKlMnOpQrSt" + "T3BlbkFJ" + "UvWxYz0123456789AbCd", []string{"openai_api_key"}},
		{"openai project", "sk-proj-" + "Q9wE8rT7yU6iO5pA4sD3fG2hJ1kL0zXcVbNmQwErTyUiOpAsDfGhJkLz", []string{"openai_api_key"}},
		{"openai lookalike", "sk-learn-is-a-python-library-for-ml", nil},
		{"anthropic", "sk-ant-api03-" + strings.Repeat("Ab9_", 20) + "AA", []string{"anthropic_api_key"}},
		{"anthropic prefix only", "sk-ant-api03-short", nil},
		{"google api key", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", []string{"google_api_key"}},
		{"google prefix only", "AIzaSy", nil},
		{"gcp service account", `{"type": "service_account", "project_id": "p", "private_key_id": "` + strings.Repeat("ab12", 10) + `", "private_key": "x"}`, []string{"gcp_service_account"}},
		{"gcp key id without service account", `{"private_key_id": "` + strings.Repeat("ab12", 10) + `"}`, nil},
		{"stripe live", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", []string{"stripe_key"}},
		{"stripe publishable", "pk_live_4eC39HqLyjWDarjtT1zdp7dc", nil},
		{"stripe test", "rk_test_" + "51HxYzAbCdEfGhIjKlMnOpQr", []string{"stripe_key"}},
		{"stripe webhook secret", "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", []string{"stripe_key"}},
		{"twilio api key", "SK" + strings.Repeat("0123456789abcdef", 2), []string{"twilio_api_key"}},
		{"twilio auth token labelled", `TWILIO_AUTH_TOKEN="` + strings.Repeat("9f8e7d6c5b4a3210", 2) + `"`, []string{"twilio_auth_token"}},
		{"twilio sid alone", "AC" + strings.Repeat("0123456789abcdef", 2), nil},
		{"sendgrid", "SG." + "ngeVfQFYQlKU0ufo8x5d1A" + "." + "TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr", []string{"sendgrid_api_key"}},
		{"sendgrid wrong shape", "SG.short.value", nil},
		{"npm checksum ok", npm, []string{"npm_token"}},
		{"npm checksum bad", "npm_" + strings.Repeat("a", 36), nil},
		{"pypi", "pypi-AgEIcHlwaS5vcmc" + strings.Repeat("Xy7_", 14), []string{"pypi_token"}},
		{"jwt", "Authorization: Bearer " + dlpTestJWT, []string{"jwt"}},
		{"jwt header without alg", "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijk", nil},
		{"jwt alg none unsigned", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4eHgifQ.", []string{"jwt"}},
		{"jwt payload not json", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24gYXQgYWxs.sig", nil},
		{"private key pem", dlpTestPEM, []string{"private_key"}},
		{"private key openssh", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----", []string{"private_key"}},
		{"private key header only", "look for -----BEGIN PRIVATE KEY----- in files", nil},
		{"database url", "DATABASE_URL=postgres://app:s3cr3tP4ss@db.internal:5432/prod", []string{"database_url"}},
		{"database url placeholder", "postgres://app:${DB_PASSWORD}@db.internal:5432/prod", nil},
		{"database url no password", "postgres://db.internal:5432/prod", nil},
		{"generic high entropy", `client_secret: "q8Z!r2Lx@9Wm#4Tv"`, []string{"generic_secret"}},
		{"generic low entropy", "password=aaaaaaaaaaaa", nil},
		{"generic placeholder", "api_key=YOUR_API_KEY_HERE", nil},
		{"email", "contact alice.smith+test@example.co.uk today", []string{"email"}},
		{"email-like asset", "logo@2x.png", nil},
		{"phone e164", "call +14155552671 now", []string{"phone"}},
		{"phone too short", "+1234567", nil},
		{"ssn", "SSN 123-45-6789", []string{"ssn"}},
		{"ssn labelled undashed", `"ssn": "123456789"`, []string{"ssn"}},
		{"ssn area 000", "000-12-3456", nil},
		{"ssn area 666", "666-12-3456", nil},
		{"ssn area 9xx", "912-12-3456", nil},
		{"ssn group 00", "123-00-4567", nil},
		{"ssn serial 0000", "123-45-0000", nil},
		{"ssn advertising", "078-05-1120", nil},
		{"card visa", "card 4111 1111 1111 1111", []string{"credit_card"}},
		{"card amex", "378282246310005", []string{"credit_card"}},
		{"card mastercard 2-series", "2221000000000009", []string{"credit_card"}},
		{"card discover", "6011111111111117", []string{"credit_card"}},
		{"card jcb", "3530111333300000", []string{"credit_card"}},
		{"card diners 14 digits", "36227206271667", []string{"credit_card"}},
		{"card unionpay", "6200000000000005", []string{"credit_card"}},
		{"card visa wrong length", "41111111111111111", nil},
		{"card all one digit", "0000000000000000", nil},
		{"card luhn fail", "4111111111111112", nil},
		{"card unknown issuer", "9111111111111111", nil},
		{"card mixed separators", "4111 1111-1111 1111", nil},
		{"iban", "IBAN: GB82 WEST 1234 5698 7654 32", []string{"iban"}},
		{"iban compact", "DE89370400440532013000", []string{"iban"}},
		{"iban bad checksum", "GB82WEST12345698765433", nil},
		{"iban bad length", "GB82WEST123456987654", nil},
		{"passport labelled", "Passport No: X1234567", []string{"passport"}},
		{"passport unlabelled", "ref X1234567", nil},
		{"plain prose", "The quick brown fox jumps over the lazy dog. Issue #1234 was closed on 2024-05-06.", nil},
	}
	s := NewScanner(DLPOptions{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := dlpTypes(s.Scan([]Field{{Location: "body.text", Value: tc.value}}))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Scan(%q) types (-want +got):\n%s", tc.value, diff)
			}
		})
	}
}

func TestScanEncodings(t *testing.T) {
	t.Parallel()
	gh := dlpTestGitHub("ghp", "R4nd0mT0kenValueABCDEFGHIJKLMN")
	email := "victim.person@example.com"
	card := "4111 1111 1111 1111"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	b64u := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name    string
		value   string
		typ     string
		wantLoc string
	}{
		{"plain", gh, "github_token", "body.x"},
		{"url encoded twice", pctAll(pctAll(gh)), "github_token", "body.x|url|url"},
		{"url encoded with a malformed escape", "%zz " + pctAll(gh), "github_token", "body.x|url"},
		{"base64", "data=" + b64("token: "+gh), "github_token", "body.x|base64"},
		{"base64url", b64u("~~~token=" + gh + "?"), "github_token", "body.x|base64url"},
		{"hex", hex.EncodeToString([]byte(gh)), "github_token", "body.x|hex"},
		{"base32", base32.StdEncoding.EncodeToString([]byte(gh)), "github_token", "body.x|base32"},
		{"nested base64 of url encoding", b64(pctAll(gh)), "github_token", "body.x|base64|url"},
		{"base64 of base64 of base64", b64(b64(b64(gh))), "github_token", "body.x|base64|base64|base64"},
		{"json unicode escapes", jsonEscAll(gh), "github_token", "body.x|json"},
		{"fullwidth", "ｇｈｐ＿" + strings.Map(func(r rune) rune {
			if r < 0x7f && r > 0x20 {
				return r + 0xFEE0
			}
			return r
		}, gh[4:]), "github_token", "body.x|nfkc"},
		{"cyrillic homoglyphs", strings.NewReplacer("A", "А", "K", "К").Replace(dlpTestAWSKeyID), "aws_access_key_id", "body.x|nfkc"},
		{"zero width joiners", "AKIA\u200b2E3MRZ7LQ5\u200dVXKW4P", "aws_access_key_id", "body.x|nfkc"},
		{"email url encoded twice", pctAll(pctAll(email)), "email", "body.x|url|url"},
		{"email base64", b64(email), "email", "body.x|base64"},
		{"email hex", hex.EncodeToString([]byte(email)), "email", "body.x|hex"},
		{"email json escapes", jsonEscAll(email), "email", "body.x|json"},
		{"card base32", base32.StdEncoding.EncodeToString([]byte("cc " + card)), "credit_card", "body.x|base32"},
		{"card fullwidth digits", "４１１１ １１１１ １１１１ １１１１", "credit_card", "body.x|nfkc"},
		{"ssn base64url", b64u("~~~ssn 123-45-6789"), "ssn", "body.x|base64url"},
		{"jwt url encoded", pctAll(dlpTestJWT), "jwt", "body.x|url"},
		{"private key json string", strings.ReplaceAll(dlpTestPEM, "\n", `\n`), "private_key", "body.x"},
	}
	s := NewScanner(DLPOptions{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := s.Scan([]Field{{Location: "body.x", Value: tc.value}})
			var got *Finding
			for i := range fs {
				if fs[i].Type == tc.typ {
					got = &fs[i]
					break
				}
			}
			if got == nil {
				t.Fatalf("Scan(%q): no %s finding; got %v", tc.value, tc.typ, fs)
			}
			if got.Location != tc.wantLoc {
				t.Errorf("location: got %q, want %q", got.Location, tc.wantLoc)
			}
			if got.Placeholder != "[REDACTED:"+tc.typ+"]" {
				t.Errorf("placeholder: got %q", got.Placeholder)
			}
		})
	}
}

func TestScanDedupeKeepsMostDirect(t *testing.T) {
	t.Parallel()
	gh := dlpTestGitHub("ghp", "R4nd0mT0kenValueABCDEFGHIJKLMN")
	enc := base64.StdEncoding.EncodeToString([]byte("x " + gh))
	s := NewScanner(DLPOptions{})
	got := s.Scan([]Field{{Location: "body.a", Value: gh + " " + enc}})
	if len(got) != 1 {
		t.Fatalf("got %d findings, want 1: %v", len(got), got)
	}
	if got[0].Location != "body.a" {
		t.Errorf("location: got %q, want body.a", got[0].Location)
	}
	if got[0].Start != 0 || got[0].End != len(gh) || got[0].Value != gh {
		t.Errorf("span: got [%d,%d) %q", got[0].Start, got[0].End, got[0].Value)
	}
}

func TestScanIgnoreAndSessionSecrets(t *testing.T) {
	t.Parallel()
	gh := dlpTestGitHub("ghp", "R4nd0mT0kenValueABCDEFGHIJKLMN")
	secret := "corp-vault-pass-91"
	s := NewScanner(DLPOptions{Ignore: []string{"Bearer " + gh}, SessionSecrets: []string{secret, "short"}})
	tests := []struct {
		name  string
		value string
		want  []string
	}{
		{"injected credential ignored", "Bearer " + gh, nil},
		{"session secret plain", "the pass is " + secret, []string{"session_secret"}},
		{"session secret base64 unaligned", base64.StdEncoding.EncodeToString(append([]byte{0xff, 0x00}, []byte(secret+"\x01\x02")...)), []string{"session_secret"}},
		{"session secret hex upper", strings.ToUpper(hex.EncodeToString([]byte(secret))), []string{"session_secret"}},
		{"session secret url encoded twice", pctAll(pctAll(secret)), []string{"session_secret"}},
		{"session secret base32", base32.StdEncoding.EncodeToString([]byte(secret)), []string{"session_secret"}},
		{"short session secret not searched", "short", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := dlpTypes(s.Scan([]Field{{Location: "body.x", Value: tc.value}}))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Scan(%q) (-want +got):\n%s", tc.value, diff)
			}
		})
	}
}

func TestScanOptions(t *testing.T) {
	t.Parallel()
	fields := []Field{
		{Location: "header.Authorization", Value: "Bearer " + dlpTestJWT},
		{Location: "body.note", Value: "mail bob@example.com"},
	}
	got := dlpTypes(NewScanner(DLPOptions{Disabled: []string{"email"}, SkipLocations: []string{"HEADER.authorization"}}).Scan(fields))
	if len(got) != 0 {
		t.Errorf("got %v, want no findings", got)
	}
	got = dlpTypes(NewScanner(DLPOptions{}).Scan(fields))
	if diff := cmp.Diff([]string{"email", "jwt"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFindingNeverLogsValue(t *testing.T) {
	t.Parallel()
	f := Finding{Type: "aws_access_key_id", Category: CategorySecret, Location: "body.k", Value: dlpTestAWSKeyID, Confidence: 0.9, Placeholder: "[REDACTED:aws_access_key_id]"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("finding", "f", f)
	if strings.Contains(buf.String(), dlpTestAWSKeyID) {
		t.Errorf("log line contains the secret: %s", buf.String())
	}
	if s := fmt.Sprintf("%v %s", f, f); strings.Contains(s, dlpTestAWSKeyID) {
		t.Errorf("fmt output contains the secret: %s", s)
	}
}

func TestDLPSignalAndRedact(t *testing.T) {
	t.Parallel()
	text := "key " + dlpTestAWSKeyID + " mail bob@example.com"
	fs := NewScanner(DLPOptions{}).Scan([]Field{{Location: "body.t", Value: text}})
	sig := DLPSignal(fs)
	want := map[string]any{"count": 2.0, "types": []any{"aws_access_key_id", "email"}, "secrets": true, "pii": true, "max_confidence": 0.9}
	if diff := cmp.Diff(want, sig); diff != "" {
		t.Errorf("DLPSignal (-want +got):\n%s", diff)
	}
	red, rest := Redact(text, fs)
	if want := "key [REDACTED:aws_access_key_id] mail [REDACTED:email]"; red != want || len(rest) != 0 {
		t.Errorf("Redact: got %q (rest %d), want %q", red, len(rest), want)
	}
}

func TestScanDeterministic(t *testing.T) {
	t.Parallel()
	fields := []Field{{Location: "body.a", Value: "x@example.com 4111111111111111 " + dlpTestAWSKeyID + " " + base64.StdEncoding.EncodeToString([]byte("y@example.org"))}}
	s := NewScanner(DLPOptions{})
	first := s.Scan(fields)
	for range 20 {
		if diff := cmp.Diff(first, s.Scan(fields)); diff != "" {
			t.Fatalf("Scan not deterministic (-first +now):\n%s", diff)
		}
	}
}

func FuzzScan(f *testing.F) {
	f.Add("AKIA2E3MRZ7LQ5VXKW4P")
	f.Add(pctAll(pctAll("alice@example.com")))
	f.Add(base64.StdEncoding.EncodeToString([]byte("4111 1111 1111 1111")))
	f.Add(dlpTestPEM)
	f.Add(jsonEscAll("xoxb-1234567890-abc") + `\ud83d\ude00\ud800`)
	f.Add("ｇｈｐ＿ password=q8Z!r2Lx@9Wm#4Tv %zz %4")
	s := NewScanner(DLPOptions{SessionSecrets: []string{"session-secret-1"}})
	f.Fuzz(func(t *testing.T, v string) {
		for _, fd := range s.Scan([]Field{{Location: "body", Value: v}}) {
			if fd.Value == "" || fd.Start < 0 || fd.Start > fd.End || fd.Confidence <= 0 || fd.Confidence > 1 {
				t.Fatalf("bad finding %+v", fd)
			}
		}
	})
}

// FuzzEmailPhoneFinders checks the hand-written e-mail, phone and card scanners
// against the regular expressions that specify them.
func FuzzEmailPhoneFinders(f *testing.F) {
	for _, s := range []string{"a@b.co", "..x.y@ex-ample.com.", "a@a@b.cd", "mail me: Bob@Ex.Org_x, c@d.e1.fg", "+14155552671", "x+1 415 555 2671a", "++1234567890", "+1-2.3 4-5.6 7 8 9 0 1 2 3 4 5 6", "4111 1111 1111 1111", "x4111111111111111 37828224631000512345", "1234-5678-9012-3456-7890 12 34"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spans := func(re interface {
			FindAllStringSubmatchIndex(string, int) [][]int
		}) [][2]int {
			var out [][2]int
			for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
				out = append(out, [2]int{m[2], m[3]})
			}
			return out
		}
		if got, want := piiEmailFind(s, ""), spans(piiEmailRE); !slices.Equal(got, want) {
			t.Errorf("piiEmailFind(%q) = %v, regexp gives %v", s, got, want)
		}
		if got, want := piiPhoneFind(s, ""), spans(piiPhoneRE); !slices.Equal(got, want) {
			t.Errorf("piiPhoneFind(%q) = %v, regexp gives %v", s, got, want)
		}
		if got, want := piiCardFind(s, ""), spans(piiCardRE); !slices.Equal(got, want) {
			t.Errorf("piiCardFind(%q) = %v, regexp gives %v", s, got, want)
		}
	})
}

// TestPathologicalInputsAreLinear guards against quadratic scanning: each
// 200 KB input below took seconds per 100 KB when a regular expression ran
// in a window around every '@' or '+'. Linear code takes milliseconds; the
// bound is loose so that a loaded machine does not fail it.
func TestPathologicalInputsAreLinear(t *testing.T) {
	t.Parallel()
	s := NewScanner(DLPOptions{SessionSecrets: []string{"abcdefgh"}})
	start := time.Now()
	for _, in := range []string{
		strings.Repeat("a@", 100_000), strings.Repeat("a@b.", 50_000), strings.Repeat("+1", 100_000),
		strings.Repeat("a.", 100_000), strings.Repeat("a/", 100_000), strings.Repeat("%25", 65_000),
		strings.Repeat("password=", 22_000), strings.Repeat("4 ", 100_000),
	} {
		s.Scan([]Field{{Location: "body", Value: in}})
		ExtractEntities(in)
		FingerprintText(in, TaintOptions{})
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("pathological inputs took %v; want linear time", d)
	}
}
