// Package config reads aarm.yaml: a file struct decoded strictly (unknown keys
// are errors), validated with messages that name the file, line and field, and
// turned into the runtime Config the composition root wires from.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Default is the commented aarm.yaml that `aarm init` writes. Its values are
// the defaults; Load of an empty file yields the same Config.
//
//go:embed default.yaml
var Default []byte

// Version is the only config format version this build reads.
const Version = 1

// Defaults, named so that code and docs agree.
const (
	DefaultListen             = "127.0.0.1:8080"
	DefaultAdmin              = "127.0.0.1:8081"
	DefaultMaxBody            = 8 << 20
	DefaultMaxExpansionRatio  = 100
	DefaultMaxInspectResponse = 1 << 20
	DefaultTTL                = 8 * time.Hour
	DefaultMaxTTL             = 24 * time.Hour
	DefaultDialTimeout        = 10 * time.Second
	DefaultTLSTimeout         = 10 * time.Second
	DefaultResponseTimeout    = 2 * time.Minute
	DefaultIdleTimeout        = 90 * time.Second
	DefaultGateTimeout        = 10 * time.Second
	DefaultPolicyFile         = "policy.yaml"
	DefaultMaxChain           = 3
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid configuration")

// Error is a configuration problem at a place in a file.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

// file is aarm.yaml as written. Pointers distinguish "absent" from zero.
type file struct {
	Version  *int   `yaml:"version"`
	Listen   string `yaml:"listen"`
	Admin    string `yaml:"admin"`
	Identity struct {
		AllowAnonymous bool   `yaml:"allow_anonymous"`
		DefaultTTL     string `yaml:"default_ttl"`
		MaxTTL         string `yaml:"max_ttl"`
	} `yaml:"identity"`
	Upstream struct {
		Resolve               map[string]string `yaml:"resolve"`
		CAFile                string            `yaml:"ca_file"`
		AllowPrivate          []string          `yaml:"allow_private"`
		DialTimeout           string            `yaml:"dial_timeout"`
		TLSHandshakeTimeout   string            `yaml:"tls_handshake_timeout"`
		ResponseHeaderTimeout string            `yaml:"response_header_timeout"`
		IdleConnTimeout       string            `yaml:"idle_conn_timeout"`
	} `yaml:"upstream"`
	Limits struct {
		MaxBody                   string   `yaml:"max_body"`
		MaxExpansionRatio         *int64   `yaml:"max_expansion_ratio"`
		MaxInspectResponse        string   `yaml:"max_inspect_response"`
		BodyPassthroughHosts      []string `yaml:"body_passthrough_hosts"`
		WebSocketPassthroughHosts []string `yaml:"websocket_passthrough_hosts"`
		GateTimeout               string   `yaml:"gate_timeout"`
	} `yaml:"limits"`
	Hosts struct {
		Deny []string `yaml:"deny"`
	} `yaml:"hosts"`
	Holds struct {
		MaxChain          *int `yaml:"max_chain"`
		RequiredApprovals *int `yaml:"required_approvals"`
		Notify            []struct {
			URL    string `yaml:"url"`
			Format string `yaml:"format"`
		} `yaml:"notify"`
	} `yaml:"holds"`
	Dashboard struct {
		URL       string `yaml:"url"`
		Approvers []struct {
			Name         string `yaml:"name"`
			PasswordHash string `yaml:"password_hash"`
		} `yaml:"approvers"`
	} `yaml:"dashboard"`
	Context struct {
		DefaultClassification string            `yaml:"default_classification"`
		TrustedHosts          []string          `yaml:"trusted_hosts"`
		PublicHosts           []string          `yaml:"public_hosts"`
		HostLevels            map[string]string `yaml:"host_levels"`
	} `yaml:"context"`
	Policy struct {
		File string `yaml:"file"`
	} `yaml:"policy"`
	Rules struct {
		Paths           []string `yaml:"paths"`
		InternalDomains []string `yaml:"internal_domains"`
	} `yaml:"rules"`
	LLM struct {
		Hosts []string `yaml:"hosts"`
	} `yaml:"llm"`
	MCP struct {
		Servers   map[string]string `yaml:"servers"`
		MetaTools []string          `yaml:"meta_tools"`
	} `yaml:"mcp"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
}

// Config is the validated runtime configuration.
type Config struct {
	// Path is the file the config came from ("" for built-in defaults).
	Path string
	// Dir is the data directory; relative paths in the file resolve against it.
	Dir string

	Listen string
	Admin  string

	AllowAnonymous bool
	DefaultTTL     time.Duration
	MaxTTL         time.Duration

	Resolve               map[string]string
	UpstreamCAFile        string
	AllowPrivate          []string
	DialTimeout           time.Duration
	TLSHandshakeTimeout   time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration

	MaxBody                   int64
	MaxExpansionRatio         int64
	MaxInspectResponse        int64
	BodyPassthroughHosts      []string
	WebSocketPassthroughHosts []string
	GateTimeout               time.Duration

	DenyHosts []string

	MaxChain          int
	RequiredApprovals int
	Notify            []Notifier

	DashboardURL string
	Approvers    []Approver

	DefaultClassification string
	TrustedHosts          []string
	PublicHosts           []string
	HostLevels            map[string]string

	PolicyFile      string
	RulePaths       []string
	InternalDomains []string
	// MCPServers names MCP servers by host, host:port or URL prefix;
	// MCPMetaTools lists wrapper tools resolved to the tool they name
	// (nil: the built-in list).
	MCPServers   map[string]string
	MCPMetaTools []string
	// LLMHosts are model endpoints besides the known providers (a
	// self-hosted OpenAI-compatible server): their calls count as the
	// agent's own model calls.
	LLMHosts []string

	LogLevel  string
	LogFormat string
}

// Notifier is a webhook told about new holds.
type Notifier struct {
	URL string
	// Format is "json" or "slack".
	Format string
}

// Approver is a person who may log in to the dashboard and decide holds.
type Approver struct {
	Name         string
	PasswordHash string
}

// Load reads and validates the config at path, resolving relative paths
// against dir. A missing file is an error; use Parse(dir, "", nil) for the
// built-in defaults.
func Load(dir, path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(dir, path, data)
}

// Parse decodes and validates config bytes. name is used in error messages.
func Parse(dir, name string, data []byte) (*Config, error) {
	if name == "" {
		name = "aarm.yaml"
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	var f file
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil {
			return nil, yamlError(name, err)
		}
	}
	v := validator{name: name, root: &root}
	c := v.build(dir, &f)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	c.Path = name
	return c, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// yamlError turns yaml.v3's messages ("yaml: unmarshal errors:\n  line 4:
// field foo not found in type config.file") into file:line errors.
func yamlError(name string, err error) error {
	var errs []error
	for _, m := range yamlLine.FindAllStringSubmatch(err.Error(), -1) {
		n, _ := strconv.Atoi(m[1])
		msg := strings.Replace(m[2], "in type config.file", "", 1)
		msg = strings.Replace(msg, "not found", "is not a known setting", 1)
		errs = append(errs, &Error{File: name, Line: n, Msg: strings.TrimSpace(msg)})
	}
	if len(errs) == 0 {
		return &Error{File: name, Msg: err.Error()}
	}
	return errors.Join(errs...)
}

type validator struct {
	name string
	root *yaml.Node
	errs []error
}

// fail records a problem with field (a dotted path into the file).
func (v *validator) fail(field, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.name, Line: lineOf(v.root, field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// lineOf finds the line of a dotted field path in the YAML tree, or 0.
func lineOf(root *yaml.Node, field string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(field, ".") {
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

func (v *validator) duration(field, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		v.fail(field, "%q is not a positive duration (write e.g. 30s, 5m, 1h)", s)
		return def
	}
	return d
}

func (v *validator) size(field, s string, def int64) int64 {
	if s == "" {
		return def
	}
	n, err := ParseSize(s)
	if err != nil || n <= 0 {
		v.fail(field, "%q is not a positive size (write bytes or e.g. 512KiB, 8MiB)", s)
		return def
	}
	return n
}

func (v *validator) addr(field, s, def string) string {
	if s == "" {
		return def
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		v.fail(field, "%q is not host:port (write e.g. 127.0.0.1:8080, or :0 for a free port)", s)
		return def
	}
	return s
}

func (v *validator) path(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}

func (v *validator) build(dir string, f *file) *Config {
	c := &Config{Dir: dir}
	if f.Version != nil && *f.Version != Version {
		v.fail("version", "version %d is not supported by this build (want %d)", *f.Version, Version)
	}
	c.Listen = v.addr("listen", f.Listen, DefaultListen)
	c.Admin = v.addr("admin", f.Admin, DefaultAdmin)

	c.AllowAnonymous = f.Identity.AllowAnonymous
	c.DefaultTTL = v.duration("identity.default_ttl", f.Identity.DefaultTTL, DefaultTTL)
	c.MaxTTL = v.duration("identity.max_ttl", f.Identity.MaxTTL, DefaultMaxTTL)
	if c.DefaultTTL > c.MaxTTL {
		v.fail("identity.default_ttl", "%s is longer than identity.max_ttl %s", c.DefaultTTL, c.MaxTTL)
	}

	c.Resolve = map[string]string{}
	for k, a := range f.Upstream.Resolve {
		if _, _, err := net.SplitHostPort(k); err != nil {
			v.fail("upstream.resolve", "key %q is not host:port (write e.g. api.github.com:443)", k)
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			v.fail("upstream.resolve", "address %q for %s is not host:port (write e.g. 127.0.0.1:9443)", a, k)
			continue
		}
		c.Resolve[strings.ToLower(k)] = a
	}
	c.UpstreamCAFile = v.path(dir, f.Upstream.CAFile)
	if c.UpstreamCAFile != "" {
		if _, err := os.Stat(c.UpstreamCAFile); err != nil {
			v.fail("upstream.ca_file", "cannot read %s: %v", c.UpstreamCAFile, err)
		}
	}
	for _, p := range f.Upstream.AllowPrivate {
		if strings.TrimSpace(p) == "" {
			v.fail("upstream.allow_private", "empty entry")
		}
	}
	c.AllowPrivate = f.Upstream.AllowPrivate
	c.DialTimeout = v.duration("upstream.dial_timeout", f.Upstream.DialTimeout, DefaultDialTimeout)
	c.TLSHandshakeTimeout = v.duration("upstream.tls_handshake_timeout", f.Upstream.TLSHandshakeTimeout, DefaultTLSTimeout)
	c.ResponseHeaderTimeout = v.duration("upstream.response_header_timeout", f.Upstream.ResponseHeaderTimeout, DefaultResponseTimeout)
	c.IdleConnTimeout = v.duration("upstream.idle_conn_timeout", f.Upstream.IdleConnTimeout, DefaultIdleTimeout)

	c.MaxBody = v.size("limits.max_body", f.Limits.MaxBody, DefaultMaxBody)
	c.MaxExpansionRatio = DefaultMaxExpansionRatio
	if f.Limits.MaxExpansionRatio != nil {
		if *f.Limits.MaxExpansionRatio < 1 {
			v.fail("limits.max_expansion_ratio", "must be at least 1")
		} else {
			c.MaxExpansionRatio = *f.Limits.MaxExpansionRatio
		}
	}
	c.MaxInspectResponse = v.size("limits.max_inspect_response", f.Limits.MaxInspectResponse, DefaultMaxInspectResponse)
	c.BodyPassthroughHosts = f.Limits.BodyPassthroughHosts
	c.WebSocketPassthroughHosts = f.Limits.WebSocketPassthroughHosts
	c.GateTimeout = v.duration("limits.gate_timeout", f.Limits.GateTimeout, DefaultGateTimeout)

	c.DenyHosts = f.Hosts.Deny

	c.MaxChain = DefaultMaxChain
	if f.Holds.MaxChain != nil {
		if *f.Holds.MaxChain < 1 {
			v.fail("holds.max_chain", "must be at least 1")
		} else {
			c.MaxChain = *f.Holds.MaxChain
		}
	}
	c.RequiredApprovals = 1
	if f.Holds.RequiredApprovals != nil {
		if *f.Holds.RequiredApprovals < 1 {
			v.fail("holds.required_approvals", "must be at least 1")
		} else {
			c.RequiredApprovals = *f.Holds.RequiredApprovals
		}
	}
	for i, n := range f.Holds.Notify {
		field := fmt.Sprintf("holds.notify[%d]", i)
		u, err := url.Parse(n.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.fail(field+".url", "%q is not an http(s) URL", n.URL)
		}
		format := strings.ToLower(n.Format)
		switch format {
		case "":
			format = "json"
		case "json", "slack":
		default:
			v.fail(field+".format", "%q is neither json nor slack", n.Format)
		}
		c.Notify = append(c.Notify, Notifier{URL: n.URL, Format: format})
	}

	c.DashboardURL = strings.TrimSuffix(f.Dashboard.URL, "/")
	seen := map[string]bool{}
	for i, a := range f.Dashboard.Approvers {
		field := fmt.Sprintf("dashboard.approvers[%d]", i)
		switch {
		case strings.TrimSpace(a.Name) == "":
			v.fail(field+".name", "is required")
		case seen[a.Name]:
			v.fail(field+".name", "%q is listed twice", a.Name)
		case a.PasswordHash == "":
			v.fail(field+".password_hash", "is required (make one with `aarm approvers hash`)")
		}
		seen[a.Name] = true
		c.Approvers = append(c.Approvers, Approver{Name: a.Name, PasswordHash: a.PasswordHash})
	}

	c.DefaultClassification = strings.ToUpper(f.Context.DefaultClassification)
	switch c.DefaultClassification {
	case "":
		c.DefaultClassification = "RESTRICTED"
	case "PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED":
	default:
		v.fail("context.default_classification", "%q is not one of PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED", f.Context.DefaultClassification)
	}
	c.TrustedHosts = f.Context.TrustedHosts
	c.PublicHosts = f.Context.PublicHosts
	c.HostLevels = map[string]string{}
	for h, l := range f.Context.HostLevels {
		switch lu := strings.ToUpper(l); lu {
		case "PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED":
			c.HostLevels[strings.ToLower(h)] = lu
		default:
			v.fail("context.host_levels", "%q for %s is not one of PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED", l, h)
		}
	}

	c.PolicyFile = v.path(dir, f.Policy.File)
	if f.Policy.File == "" {
		c.PolicyFile = v.path(dir, DefaultPolicyFile)
	}
	for _, p := range f.Rules.Paths {
		c.RulePaths = append(c.RulePaths, v.path(dir, p))
	}
	c.InternalDomains = f.Rules.InternalDomains
	c.MCPServers = map[string]string{}
	for k, name := range f.MCP.Servers {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(name) == "" {
			v.fail("mcp.servers", "entries need a host (or URL prefix) and a name")
			continue
		}
		c.MCPServers[k] = name
	}
	c.MCPMetaTools = f.MCP.MetaTools
	c.LLMHosts = f.LLM.Hosts

	c.LogLevel = strings.ToLower(f.Log.Level)
	switch c.LogLevel {
	case "":
		c.LogLevel = "info"
	case "debug", "info", "warn", "error":
	default:
		v.fail("log.level", "%q is not one of debug, info, warn, error", f.Log.Level)
	}
	c.LogFormat = strings.ToLower(f.Log.Format)
	switch c.LogFormat {
	case "":
		c.LogFormat = "text"
	case "text", "json":
	default:
		v.fail("log.format", "%q is neither text nor json", f.Log.Format)
	}
	return c
}

// ParseSize reads "1048576", "512KiB", "8MiB", "1GiB" (also KB/MB/GB as
// binary multiples, which is what people mean for body limits).
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size too large")
	}
	return n * mult, nil
}
