// Command aarm is the runtime security gate for AI agents: an HTTP(S) egress
// proxy that judges every outbound tool call against policy and the session's
// context before it leaves, and records a signed receipt of each.
//
// This file is the composition root: flags, data directory, wiring, signals.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Exit codes (DESIGN.md §5).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// errUsage marks a usage error: the command prints usage and exits 2.
var errUsage = errors.New("usage")

// usageError is a usage problem with a message for the user.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Unwrap() error { return errUsage }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError carries a child's exit code through (aarm exec).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"init":      {"create the data directory: CA, signing key, admin token, aarm.yaml, policy.yaml", cmdInit},
		"run":       {"run the proxy and the admin listener", cmdRun},
		"exec":      {"run a command as an agent in a new session", cmdExec},
		"session":   {"start | list | show | end sessions", cmdSession},
		"env":       {"print the environment lines for a session token", cmdEnv},
		"ca":        {"install | uninstall | path of the local CA", cmdCA},
		"version":   {"print the version", cmdVersion},
		"verify":    {"verify the receipt ledger (or an exported bundle) offline", cmdVerify},
		"approvals": {"list | approve ID | deny ID --reason TEXT held actions", cmdApprovals},
		"approvers": {"hash: make a dashboard password hash (password on stdin)", cmdApprovers},
		"receipts":  {"list | show ID | export receipts", cmdReceipts},
		"policy":    {"test FILE... | lint FILE...", cmdPolicy},
		"rules":     {"explain REQUEST_FILE | list", cmdRules},
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "aarm: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	err := cmd.run(args[1:], stdout, stderr)
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "aarm %s: %v\n", args[0], err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "aarm %s: %v\n", args[0], err)
		return exitFailure
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "aarm — runtime security gate for AI agents (AARM)")
	fmt.Fprintln(w, "\nUsage: aarm <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nData directory: --dir, else $AARM_HOME, else ~/.aarm. Run 'aarm <command> -h' for flags.")
}

func cmdVersion(_ []string, stdout, _ io.Writer) error {
	fmt.Fprintln(stdout, "aarm", version)
	return nil
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("aarm "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	return nil
}

// dataDir resolves the data directory: flag, else $AARM_HOME, else ~/.aarm.
func dataDir(flagValue string) (string, error) {
	d := flagValue
	if d == "" {
		d = os.Getenv("AARM_HOME")
	}
	if d == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no --dir, no $AARM_HOME and no home directory: %w", err)
		}
		d = filepath.Join(home, ".aarm")
	}
	return filepath.Abs(d)
}

// files names the files of a data directory (DESIGN.md §5).
type files struct{ dir string }

func (f files) path(name string) string { return filepath.Join(f.dir, name) }
func (f files) ca() string              { return f.path("ca.pem") }
func (f files) signingKey() string      { return f.path("signing-key.pem") }
func (f files) signingPub() string      { return f.path("signing-pub.pem") }
func (f files) adminToken() string      { return f.path("admin-token") }
func (f files) sessionKey() string      { return f.path("session-key") }
func (f files) config() string          { return f.path("aarm.yaml") }
func (f files) policy() string          { return f.path("policy.yaml") }
func (f files) db() string              { return f.path("db") }
func (f files) runDir() string          { return f.path("run") }
func (f files) addrFile() string        { return filepath.Join(f.runDir(), "addr.json") }

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
