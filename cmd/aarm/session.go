package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/ui"
)

// adminClient talks to a running aarm's admin API, found through
// DIR/run/addr.json and authenticated with DIR/admin-token.
type adminClient struct {
	dir   string
	base  string
	token string
	addrs runAddrs
	http  *http.Client
	// approver, when set, is sent as X-AARM-Approver: the name recorded
	// for approvals made with the admin token.
	approver string
}

func newAdminClient(dirFlag string) (*adminClient, error) {
	dir, err := dataDir(dirFlag)
	if err != nil {
		return nil, err
	}
	f := files{dir}
	b, err := os.ReadFile(f.addrFile())
	if err != nil {
		return nil, fmt.Errorf("aarm does not seem to be running on %s (no %s): start it with `aarm run --dir %s`", dir, f.addrFile(), dir)
	}
	var a runAddrs
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", f.addrFile(), err)
	}
	tok, err := readSecret(f.adminToken())
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	// The admin API is reached directly, never through a proxy from the
	// environment (it may be this very proxy, which refuses it).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &adminClient{dir: dir, base: "http://" + a.Admin, token: tok, addrs: a, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// do sends a JSON request and decodes a JSON answer into out.
func (c *adminClient) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if c.approver != "" {
		req.Header.Set("X-AARM-Approver", c.approver)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s", method, path, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

// stream copies a GET answer to w as it arrives (exports can be large).
func (c *adminClient) stream(path string, w io.Writer) error {
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	client := *c.http
	client.Timeout = 0
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("admin API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, bytes.TrimSpace(b))
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// sessionFlags registers the flags that describe a new session.
func sessionFlags(fl *flag.FlagSet) (*gate.SessionSpec, *time.Duration, *stringList) {
	spec := &gate.SessionSpec{}
	fl.StringVar(&spec.User, "user", os.Getenv("USER"), "human principal the agent acts for")
	fl.StringVar(&spec.Agent, "agent", "agent", "agent name")
	fl.StringVar(&spec.Service, "service", "", "service the agent runs as")
	fl.StringVar(&spec.Intent, "intent", "", "the user's original request (what the agent was asked to do)")
	ttl := fl.Duration("ttl", 0, "token lifetime (default identity.default_ttl)")
	scope := &stringList{}
	fl.Var(scope, "scope", "privilege scope, e.g. github:acme/web (repeatable)")
	return spec, ttl, scope
}

func cmdSession(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: start, list, show ID, end ID")
	}
	fl := newFlags("session "+args[0], stderr)
	dirFlag := fl.String("dir", "", "data directory (default $AARM_HOME or ~/.aarm)")
	switch args[0] {
	case "start":
		spec, ttl, scope := sessionFlags(fl)
		asJSON := fl.Bool("json", false, "print the JSON answer")
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		c, err := newAdminClient(*dirFlag)
		if err != nil {
			return err
		}
		spec.TTL, spec.Scope = aarmDuration(*ttl), *scope
		var resp ui.SessionResponse
		if err := c.do(http.MethodPost, "/api/v1/sessions", spec, &resp); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, resp)
		}
		fmt.Fprintf(stdout, "# session %s for %s (agent %s), expires %s\n", resp.ID, resp.Human, resp.Agent, resp.ExpiresAt.Format(time.RFC3339))
		fmt.Fprintf(stdout, "# token: %s\n", resp.Token)
		printEnv(stdout, resp.Env)
		return nil
	case "list":
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		c, err := newAdminClient(*dirFlag)
		if err != nil {
			return err
		}
		var out struct {
			Sessions []*gate.Session `json:"sessions"`
		}
		if err := c.do(http.MethodGet, "/api/v1/sessions", nil, &out); err != nil {
			return err
		}
		now := time.Now()
		fmt.Fprintf(stdout, "%-32s %-10s %-14s %-16s %-8s %s\n", "ID", "HUMAN", "AGENT", "CREATED", "STATE", "INTENT")
		for _, s := range out.Sessions {
			state := "active"
			if !s.EndedAt.IsZero() {
				state = "ended"
			} else if !now.Before(s.ExpiresAt) {
				state = "expired"
			}
			fmt.Fprintf(stdout, "%-32s %-10s %-14s %-16s %-8s %s\n", s.ID, s.Human, s.Agent, s.CreatedAt.Local().Format("2006-01-02 15:04"), state, s.Intent)
		}
		return nil
	case "show", "end":
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		if fl.NArg() != 1 {
			return usagef("session %s wants one session ID", args[0])
		}
		c, err := newAdminClient(*dirFlag)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if args[0] == "show" {
			err = c.do(http.MethodGet, "/api/v1/sessions/"+fl.Arg(0), nil, &raw)
		} else {
			err = c.do(http.MethodPost, "/api/v1/sessions/"+fl.Arg(0)+"/end", map[string]string{"reason": "ended from the CLI"}, &raw)
		}
		if err != nil {
			return err
		}
		_, err = stdout.Write(raw)
		return err
	default:
		return usagef("unknown subcommand %q: want start, list, show, end", args[0])
	}
}

func cmdEnv(args []string, stdout, stderr io.Writer) error {
	fl := newFlags("env", stderr)
	dirFlag := fl.String("dir", "", "data directory (default $AARM_HOME or ~/.aarm)")
	token := fl.String("session", "", "session token (from `aarm session start`)")
	agent := fl.String("agent", "agent", "agent name for the proxy URL's user part")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if *token == "" {
		return usagef("--session TOKEN is required")
	}
	c, err := newAdminClient(*dirFlag)
	if err != nil {
		return err
	}
	printEnv(stdout, ui.AgentEnv("http://"+c.addrs.Proxy, *agent, *token, files{c.dir}.ca(), []string{c.addrs.Admin}))
	return nil
}

func printEnv(w io.Writer, env map[string]string) {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "export %s=%s\n", k, shellQuote(env[k]))
	}
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@,=+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cmdExec runs a command as an agent in a new session and ends the session
// when the command exits, returning its exit code.
func cmdExec(args []string, stdout, stderr io.Writer) error {
	fl := newFlags("exec", stderr)
	dirFlag := fl.String("dir", "", "data directory (default $AARM_HOME or ~/.aarm)")
	spec, ttl, scope := sessionFlags(fl)
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	argv := fl.Args()
	if len(argv) == 0 {
		return usagef("want a command after the flags: aarm exec --intent TEXT -- CMD [ARGS...]")
	}
	c, err := newAdminClient(*dirFlag)
	if err != nil {
		return err
	}
	spec.TTL, spec.Scope = aarmDuration(*ttl), *scope
	var resp ui.SessionResponse
	if err := c.do(http.MethodPost, "/api/v1/sessions", spec, &resp); err != nil {
		return err
	}
	defer func() {
		if err := c.do(http.MethodPost, "/api/v1/sessions/"+resp.ID+"/end", map[string]string{"reason": "command exited"}, nil); err != nil {
			fmt.Fprintf(stderr, "aarm exec: ending session %s: %v\n", resp.ID, err)
		}
	}()
	fmt.Fprintf(stderr, "aarm exec: session %s (agent %s)\n", resp.ID, resp.Agent)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	env := os.Environ()
	for k, v := range resp.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	// Forward interrupts to the child; the session ends when it exits.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sig:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code := ee.ExitCode()
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					code = 128 + int(ws.Signal())
				}
				return &exitError{code}
			}
			return err
		}
	}
}

func aarmDuration(d time.Duration) aarm.Duration { return aarm.Duration(d) }
