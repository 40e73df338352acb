package inspect

import (
	"encoding/base64"
	"encoding/json"
	"hash/crc32"
	"math"
	"regexp"
	"slices"
	"strings"
)

// Secret detectors (issue 6). Each is compiled once at package init; where
// the format carries a checksum or a structure, the validator checks it and
// rejects look-alikes.

var (
	secretAWSKeyIDRE       = regexp.MustCompile(`\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`)
	secretAWSSecretLabelRE = regexp.MustCompile(`(?i)(?:aws)?_?secret_?(?:access)?_?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)`)
	secretAWSSecretNearRE  = regexp.MustCompile(`(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)`)
	secretGitHubClassicRE  = regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9]{36})\b`)
	secretGitHubFineRE     = regexp.MustCompile(`\b(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b`)
	secretGitLabRE         = regexp.MustCompile(`\b((?:glpat|gldt|glrt|glptt|glft|glsoat|gloas|glcbt)-[A-Za-z0-9_-]{20,})`)
	secretSlackTokenRE     = regexp.MustCompile(`\b(xox[abposre]-[0-9A-Za-z-]{10,}|xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{16,})`)
	secretSlackWebhookRE   = regexp.MustCompile(`(https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,})`)
	secretOpenAIRE         = regexp.MustCompile(`\b(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})`)
	secretAnthropicRE      = regexp.MustCompile(`\b(sk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_-]{32,})`)
	secretGoogleAPIKeyRE   = regexp.MustCompile(`\b(AIza[0-9A-Za-z_-]{35})`)
	secretGCPServiceAcctRE = regexp.MustCompile(`"private_key_id"\s*:\s*"([0-9a-f]{40})"`)
	secretStripeRE         = regexp.MustCompile(`\b((?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,}|whsec_[A-Za-z0-9+/]{32,})`)
	secretTwilioKeyRE      = regexp.MustCompile(`\b(SK[0-9a-f]{32})\b`)
	secretTwilioTokenRE    = regexp.MustCompile(`(?i)twilio[a-z_.-]{0,20}(?:auth)?[_-]?token["']?\s*[:=]\s*["']?([0-9a-f]{32})\b`)
	secretSendGridRE       = regexp.MustCompile(`\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})`)
	secretNPMRE            = regexp.MustCompile(`\b(npm_[A-Za-z0-9]{36})\b`)
	secretPyPIRE           = regexp.MustCompile(`\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,})`)
	secretJWTRE            = regexp.MustCompile(`\b(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)`)
	secretPrivateKeyRE     = regexp.MustCompile(`(-----BEGIN (?:[A-Z0-9]+ ){0,2}PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=\s\\:,.]|-[A-Za-z0-9])*(?:-----END (?:[A-Z0-9]+ ){0,2}PRIVATE KEY(?: BLOCK)?-----)?)`)
	secretDatabaseURLRE    = regexp.MustCompile(`\b((?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|clickhouse)://[^\s:/@"'<>]+:[^\s@/"'<>]+@[^\s/"'<>?#]+)`)
)

// dlpDetectors returns the built-in detectors; only the generic assignment
// detector depends on the options (its entropy threshold).
func dlpDetectors(opts DLPOptions) []*dlpDetector {
	minEntropy := opts.MinEntropy
	ds := []*dlpDetector{
		{typ: "aws_access_key_id", category: CategorySecret, re: secretAWSKeyIDRE, any: []string{"AKIA", "ASIA", "ABIA", "ACCA"}, validate: secretValidateAWSKeyID},
		{typ: "aws_secret_access_key", category: CategorySecret, re: secretAWSSecretLabelRE, any: []string{"secret"}, fold: true, validate: secretValidateAWSSecret},
		{typ: "aws_secret_access_key", category: CategorySecret, re: secretAWSSecretNearRE, any: []string{"AKIA", "ASIA"}, validate: secretValidateAWSSecretNear},
		{typ: "github_token", category: CategorySecret, re: secretGitHubClassicRE, any: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, validate: secretValidateBase62CRC},
		{typ: "github_token", category: CategorySecret, re: secretGitHubFineRE, any: []string{"github_pat_"}, conf: 0.95},
		{typ: "gitlab_token", category: CategorySecret, re: secretGitLabRE, any: []string{"glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "gloas-", "glcbt-"}, conf: 0.9},
		{typ: "slack_token", category: CategorySecret, re: secretSlackTokenRE, any: []string{"xox", "xapp-"}, validate: secretValidateSlack},
		{typ: "slack_webhook", category: CategorySecret, re: secretSlackWebhookRE, any: []string{"hooks.slack.com"}, conf: 0.95},
		{typ: "openai_api_key", category: CategorySecret, re: secretOpenAIRE, any: []string{"sk-"}, validate: secretValidateOpenAI},
		{typ: "anthropic_api_key", category: CategorySecret, re: secretAnthropicRE, any: []string{"sk-ant-"}, conf: 0.99},
		{typ: "google_api_key", category: CategorySecret, re: secretGoogleAPIKeyRE, any: []string{"AIza"}, conf: 0.95},
		{typ: "gcp_service_account", category: CategorySecret, re: secretGCPServiceAcctRE, any: []string{"private_key_id"}, validate: secretValidateGCP},
		{typ: "stripe_key", category: CategorySecret, re: secretStripeRE, any: []string{"sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"}, validate: secretValidateStripe},
		{typ: "twilio_api_key", category: CategorySecret, re: secretTwilioKeyRE, any: []string{"SK"}, conf: 0.7},
		{typ: "twilio_auth_token", category: CategorySecret, re: secretTwilioTokenRE, any: []string{"twilio"}, fold: true, conf: 0.85},
		{typ: "sendgrid_api_key", category: CategorySecret, re: secretSendGridRE, any: []string{"SG."}, conf: 0.99},
		{typ: "npm_token", category: CategorySecret, re: secretNPMRE, any: []string{"npm_"}, validate: secretValidateBase62CRC},
		{typ: "pypi_token", category: CategorySecret, re: secretPyPIRE, any: []string{"pypi-"}, conf: 0.99},
		{typ: "jwt", category: CategorySecret, re: secretJWTRE, any: []string{"eyJ"}, validate: secretValidateJWT},
		{typ: "private_key", category: CategorySecret, re: secretPrivateKeyRE, any: []string{"PRIVATE KEY"}, validate: secretValidatePrivateKey},
		{typ: "database_url", category: CategorySecret, re: secretDatabaseURLRE, any: []string{"://"}, validate: secretValidateDatabaseURL},
		{typ: "generic_secret", category: CategorySecret, find: secretGenericFind, any: []string{"pass", "pwd", "secret", "key", "token"}, fold: true,
			validate: func(v, text string, start int) float64 { return secretValidateGeneric(v, text, start, minEntropy) }},
	}
	return append(ds, piiDetectors()...)
}

func secretValidateAWSKeyID(v, _ string, _ int) float64 {
	if strings.Contains(v, "EXAMPLE") {
		return 0.5 // AWS documentation's example key id
	}
	return 0.9
}

func secretValidateAWSSecret(v, _ string, _ int) float64 {
	if shannonEntropy(v) < 4.0 || !secretMixed(v) {
		return 0
	}
	return 0.9
}

// secretValidateAWSSecretNear accepts an unlabelled 40-character key only
// within 256 bytes of an access key id.
func secretValidateAWSSecretNear(v, text string, start int) float64 {
	if shannonEntropy(v) < 4.0 || !secretMixed(v) {
		return 0
	}
	lo, hi := max(0, start-256), min(len(text), start+len(v)+256)
	if secretAWSKeyIDRE.MatchString(text[lo:hi]) {
		return 0.85
	}
	return 0
}

// secretMixed reports whether v has upper case, lower case and digits.
func secretMixed(v string) bool {
	var up, lo, dg bool
	for i := 0; i < len(v); i++ {
		c := v[i]
		up = up || 'A' <= c && c <= 'Z'
		lo = lo || 'a' <= c && c <= 'z'
		dg = dg || '0' <= c && c <= '9'
	}
	return up && lo && dg
}

const secretBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// secretBase62CRC returns the 6-character base62 CRC32 checksum GitHub and
// npm append to their tokens' 30-character random part
// (https://github.blog/2021-04-05-behind-githubs-new-authentication-token-formats/).
func secretBase62CRC(random string) string {
	n := crc32.ChecksumIEEE([]byte(random))
	var b [6]byte
	for i := 5; i >= 0; i-- {
		b[i] = secretBase62[n%62]
		n /= 62
	}
	return string(b[:])
}

// secretValidateBase62CRC checks the checksum of "prefix_" + 30 random
// characters + 6 checksum characters.
func secretValidateBase62CRC(v, _ string, _ int) float64 {
	i := strings.IndexByte(v, '_')
	body := v[i+1:]
	if len(body) != 36 || secretBase62CRC(body[:30]) != body[30:] {
		return 0
	}
	return 0.99
}

func secretValidateSlack(v, _ string, _ int) float64 {
	digits := 0
	for i := 0; i < len(v); i++ {
		if '0' <= v[i] && v[i] <= '9' {
			digits++
		}
	}
	if digits < 6 {
		return 0
	}
	return 0.9
}

func secretValidateOpenAI(v, _ string, _ int) float64 {
	switch {
	case strings.HasPrefix(v, "sk-ant-"):
		return 0
	case strings.Contains(v, "T3BlbkFJ"):
		return 0.99
	case (strings.HasPrefix(v, "sk-proj-") || strings.HasPrefix(v, "sk-svcacct-") || strings.HasPrefix(v, "sk-admin-")) && len(v) >= 50:
		if shannonEntropy(v) >= 4 {
			return 0.95
		}
	case len(v) == 51 && secretMixed(v[3:]) && !strings.ContainsAny(v[3:], "-_"):
		return 0.85
	}
	return 0
}

func secretValidateGCP(_, text string, _ int) float64 {
	if strings.Contains(text, "service_account") && strings.Contains(text, "private_key") {
		return 0.95
	}
	return 0
}

func secretValidateStripe(v, _ string, _ int) float64 {
	switch {
	case strings.Contains(v, "_live_"):
		return 0.95
	case strings.HasPrefix(v, "whsec_"):
		return 0.9
	}
	return 0.7 // test-mode keys reach test data only, still credentials
}

// secretValidateJWT requires a header that decodes to a JSON object with an
// "alg" member, and a payload that decodes to JSON.
func secretValidateJWT(v, _ string, _ int) float64 {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return 0
	}
	var hdr map[string]any
	hb, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil || json.Unmarshal(hb, &hdr) != nil {
		return 0
	}
	if _, ok := hdr["alg"].(string); !ok {
		return 0
	}
	pb, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil || !json.Valid(pb) {
		return 0
	}
	return 0.9
}

func secretValidatePrivateKey(v, _ string, _ int) float64 {
	i := strings.Index(v, "-----")
	i = strings.Index(v[i+5:], "-----") + i + 10
	n := 0
	for j := i; j < len(v) && !strings.HasPrefix(v[j:], "-----END"); j++ {
		c := v[j]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' {
			n++
		}
	}
	if n < 32 {
		return 0
	}
	return 0.99
}

// secretPlaceholder reports whether v is a stand-in rather than a value.
func secretPlaceholder(v string) bool {
	l := strings.ToLower(strings.Trim(v, `"'`))
	if l == "" || strings.HasPrefix(l, "${") || strings.HasPrefix(l, "{{") || strings.HasPrefix(l, "<") ||
		strings.HasPrefix(l, "$") || strings.HasPrefix(l, "%(") || strings.HasPrefix(l, "process.env") || strings.HasPrefix(l, "os.environ") {
		return true
	}
	for _, p := range []string{"password", "passwd", "changeme", "example", "placeholder", "your_", "your-", "redacted", "xxxx", "****", "....", "dummy", "sample", "null", "none", "undefined"} {
		if strings.Contains(l, p) {
			return true
		}
	}
	return false
}

func secretValidateDatabaseURL(v, _ string, _ int) float64 {
	rest := v[strings.Index(v, "://")+3:]
	at := strings.LastIndexByte(rest, '@')
	colon := strings.IndexByte(rest, ':')
	if at < 0 || colon < 0 || colon > at {
		return 0
	}
	if pw := rest[colon+1 : at]; len(pw) < 3 || secretPlaceholder(pw) {
		return 0
	}
	return 0.9
}

func secretValidateGeneric(v, _ string, _ int, minEntropy float64) float64 {
	v = strings.TrimRight(v, ".")
	if len(v) < 8 || secretPlaceholder(v) {
		return 0
	}
	e := shannonEntropy(v)
	if e < minEntropy {
		return 0
	}
	return math.Min(0.9, 0.6+(e-minEntropy)/4)
}

// shannonEntropy returns the entropy of s in bits per byte.
func shannonEntropy(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	h, n := 0.0, float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// secretGenericKeywords name a credential in an assignment
// ("db_password=...", "client_secret": "...", "X-Api-Key: ...").
var secretGenericKeywords = []string{"password", "passwd", "pwd", "secret", "api_key", "api-key", "apikey",
	"access_token", "access-token", "auth_token", "auth-token", "refresh_token", "bearer_token", "session_token",
	"private_key", "private-key"}

// secretGenericFind finds the values of assignments to credential-named
// keys: keyword, optional identifier tail, optional quote (or escaped
// quote), ':' or '=', optional quote, then 8..200 value characters. It is a
// hand-written scanner because the equivalent unanchored regular expression
// dominated scanning time.
func secretGenericFind(text, lower string) [][2]int {
	var out [][2]int
	isIdent := func(c byte) bool {
		return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
	}
	skip := func(j int, set string) int {
		for n := 0; j < len(lower) && n < 4 && strings.IndexByte(set, lower[j]) >= 0; n++ {
			j++
		}
		return j
	}
	for _, kw := range secretGenericKeywords {
		for off := 0; off < len(lower); {
			i := strings.Index(lower[off:], kw)
			if i < 0 {
				break
			}
			i += off
			off = i + len(kw)
			j := off
			for j < len(lower) && j-i < 64 && isIdent(lower[j]) {
				j++
			}
			j = skip(j, "\\\"' \t")
			if j >= len(lower) || (lower[j] != ':' && lower[j] != '=') {
				continue
			}
			j = skip(j+1, "\\\"' \t")
			k := j
			for k < len(text) && k-j < 200 && strings.IndexByte(" \t\r\n\"'`,;&<>{}()[]\\", text[k]) < 0 {
				k++
			}
			if k-j >= 8 {
				out = append(out, [2]int{j, k})
			}
		}
	}
	slices.SortFunc(out, func(a, b [2]int) int { return a[0] - b[0] })
	return slices.Compact(out)
}
