package inspect

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLevel(t *testing.T) {
	t.Parallel()
	for _, l := range []Level{LevelPublic, LevelInternal, LevelConfidential, LevelRestricted} {
		got, err := ParseLevel(l.String())
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q): got %v, %v; want %v", l.String(), got, err, l)
		}
	}
	if got, err := ParseLevel(" confidential "); err != nil || got != LevelConfidential {
		t.Errorf("ParseLevel lower case: got %v, %v", got, err)
	}
	for _, bad := range []string{"", "unknown", "SECRET"} {
		if _, err := ParseLevel(bad); !errors.Is(err, ErrUnknownLevel) {
			t.Errorf("ParseLevel(%q): got %v, want ErrUnknownLevel", bad, err)
		}
	}
	if !(LevelPublic < LevelInternal && LevelInternal < LevelConfidential && LevelConfidential < LevelRestricted) {
		t.Error("levels are not ordered")
	}
	var l Level
	if err := l.UnmarshalText([]byte("internal")); err != nil || l != LevelInternal {
		t.Errorf("UnmarshalText: got %v, %v", l, err)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	opts := ClassifyOptions{
		HostLevels:  map[string]Level{"hr.example.com": LevelConfidential, "*.internal.example": LevelInternal},
		PublicHosts: []string{"en.wikipedia.org", "*.readthedocs.io"},
	}
	scan := NewScanner(DLPOptions{})
	tests := []struct {
		name   string
		host   string
		fields []Field
		opts   ClassifyOptions
		level  Level
		tags   []string
		known  bool
	}{
		{"unclassifiable uses the highest by default", "api.unknown.example", []Field{{"body.text", "some words about nothing in particular"}}, ClassifyOptions{}, LevelRestricted, nil, false},
		{"configured default", "api.unknown.example", []Field{{"body.text", "some words about nothing in particular"}}, ClassifyOptions{Default: LevelInternal}, LevelInternal, nil, false},
		{"public host", "en.wikipedia.org", []Field{{"body.text", "The capital of France is Paris."}}, opts, LevelPublic, nil, true},
		{"public wildcard host", "foo.readthedocs.io:443", []Field{{"body.text", "Install with pip."}}, opts, LevelPublic, nil, true},
		{"public host with secrets is restricted", "en.wikipedia.org", []Field{{"body.text", "leaked " + dlpTestAWSKeyID}}, opts, LevelRestricted, []string{TagCredentials, TagSecret}, true},
		{"host level", "hr.example.com", []Field{{"body.name", "Alice"}}, opts, LevelConfidential, nil, true},
		{"wildcard host level", "wiki.internal.example", []Field{{"body.text", "Team offsite agenda"}}, opts, LevelInternal, nil, true},
		{"pii", "crm.example", []Field{{"body.0.email", "alice@example.com"}}, opts, LevelConfidential, []string{TagPII}, true},
		{"card", "shop.example", []Field{{"body.card", "4111 1111 1111 1111"}}, opts, LevelRestricted, []string{TagFinancial, TagPII}, true},
		{"ssn", "x.example", []Field{{"body.ssn", "123-45-6789"}}, opts, LevelRestricted, []string{TagPII}, true},
		{"iban", "bank.example", []Field{{"body.iban", "DE89370400440532013000"}}, opts, LevelConfidential, []string{TagFinancial}, true},
		{"private repo", "api.github.com", []Field{{"body.private", "true"}, {"body.name", "web"}}, opts, LevelConfidential, nil, true},
		{"public repo", "api.github.com", []Field{{"body.private", "false"}, {"body.name", "web"}}, opts, LevelPublic, nil, true},
		{"gitlab visibility internal", "gitlab.example", []Field{{"body.visibility", "internal"}}, opts, LevelInternal, nil, true},
		{"health", "ehr.example", []Field{{"body.note", "Patient reports dizziness; diagnosis pending, medication adjusted"}}, opts, LevelConfidential, []string{TagHealth}, true},
		{"finance", "erp.example", []Field{{"body.note", "Invoice 77 balance outstanding, account number on file"}}, opts, LevelConfidential, []string{TagFinancial}, true},
		{"source code", "raw.githubusercontent.com", []Field{{"body", "package main\n\nimport \"fmt\"\n\nfunc main() {}\n"}}, opts, LevelInternal, []string{TagSourceCode}, true},
		{"label", "docs.example", []Field{{"body.text", "CONFIDENTIAL — board minutes"}}, opts, LevelConfidential, nil, true},
		{"empty response", "api.unknown.example", []Field{{"body", ""}}, ClassifyOptions{}, LevelPublic, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dc := Classify(tc.host, tc.fields, scan.Scan(tc.fields), tc.opts)
			if dc.Level != tc.level || dc.Classified != tc.known {
				t.Errorf("got %v classified=%v (%v), want %v classified=%v", dc.Level, dc.Classified, dc.Reasons, tc.level, tc.known)
			}
			if diff := cmp.Diff(tc.tags, dc.Tags); diff != "" {
				t.Errorf("tags (-want +got):\n%s", diff)
			}
			if len(dc.Reasons) == 0 {
				t.Errorf("no reasons given")
			}
		})
	}
}
