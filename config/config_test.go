package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDefaultFileEqualsBuiltInDefaults(t *testing.T) {
	t.Parallel()
	fromFile, err := Parse("/d", "aarm.yaml", Default)
	if err != nil {
		t.Fatalf("the shipped default aarm.yaml does not load: %v", err)
	}
	builtin, err := Parse("/d", "aarm.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(builtin, fromFile, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("default.yaml and built-in defaults differ (-builtin +file):\n%s", diff)
	}
	if fromFile.MaxBody != DefaultMaxBody || fromFile.PolicyFile != "/d/policy.yaml" || fromFile.Listen != DefaultListen {
		t.Errorf("got %+v", fromFile)
	}
}

func TestErrorsNameFileLineAndField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "version: 1\nlimits:\n  max_bdy: 1MiB\n", []string{"aarm.yaml:3:", "max_bdy", "not a known setting"}},
		{"bad size", "limits:\n  max_body: lots\n", []string{"aarm.yaml:2:", "limits.max_body", "not a positive size"}},
		{"bad duration", "upstream:\n  dial_timeout: 10\n", []string{"aarm.yaml:2:", "upstream.dial_timeout", "duration"}},
		{"bad listen", "listen: 8080\n", []string{"aarm.yaml:1:", "listen", "host:port"}},
		{"bad resolve", "upstream:\n  resolve:\n    api.github.com: 127.0.0.1:1\n", []string{"aarm.yaml:2:", "upstream.resolve", "api.github.com"}},
		{"bad version", "version: 2\n", []string{"aarm.yaml:1:", "version 2"}},
		{"bad notify", "holds:\n  notify:\n    - url: ftp://x\n", []string{"aarm.yaml:", "holds.notify[0].url"}},
		{"bad class", "context:\n  default_classification: SECRET\n", []string{"aarm.yaml:2:", "context.default_classification"}},
		{"approver without hash", "dashboard:\n  approvers:\n    - name: alice\n", []string{"dashboard.approvers[0].password_hash"}},
		{"ttl order", "identity:\n  default_ttl: 48h\n", []string{"identity.default_ttl", "longer than"}},
		{"syntax", "listen: [\n", []string{"aarm.yaml:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("/d", "aarm.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if tc.name != "syntax" && !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v, want errors.Is(ErrInvalid)", err)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	t.Parallel()
	c, err := Parse("/data", "x.yaml", []byte(`
listen: 127.0.0.1:0
upstream:
  resolve: {"API.github.com:443": "127.0.0.1:9443"}
  ca_file: /dev/null
  response_header_timeout: 5s
limits:
  max_body: 512KiB
hosts:
  deny: [evil.example]
holds:
  required_approvals: 2
policy:
  file: p.yaml
rules:
  paths: [packs, /abs/pack.yaml]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Resolve["api.github.com:443"], "127.0.0.1:9443"; got != want {
		t.Errorf("resolve: got %q, want %q", got, want)
	}
	if c.MaxBody != 512<<10 || c.RequiredApprovals != 2 || c.MaxChain != DefaultMaxChain || c.ResponseHeaderTimeout != 5*time.Second || c.DenyHosts[0] != "evil.example" {
		t.Errorf("got %+v", c)
	}
	if diff := cmp.Diff([]string{"/data/packs", "/abs/pack.yaml"}, c.RulePaths); diff != "" {
		t.Errorf("rule paths (-want +got):\n%s", diff)
	}
	if c.PolicyFile != "/data/p.yaml" {
		t.Errorf("policy file: got %q", c.PolicyFile)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"10": 10, "1KiB": 1024, "8MiB": 8 << 20, "2 MB": 2 << 20, "1G": 1 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q): got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "1TiB", "-"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q): got no error", bad)
		}
	}
}
