package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aarmproxy/aarm/config"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/aarmproxy/aarm/rules"
)

// cmdPolicy runs policy test files and lints policies.
func cmdPolicy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: test FILE..., lint [FILE...]")
	}
	fl := newFlags("policy "+args[0], stderr)
	dirFlag := fl.String("dir", "", "data directory, for the rule packs aarm.yaml adds (default $AARM_HOME or ~/.aarm)")
	switch args[0] {
	case "test":
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		if fl.NArg() == 0 {
			return usagef("policy test wants test files")
		}
		results, err := rules.RunPolicyTests(fl.Args()...)
		if err != nil {
			return err
		}
		failed := rules.FormatPolicyTestResults(stdout, results)
		if failed > 0 {
			return &exitError{code: exitFailure}
		}
		return nil
	case "lint":
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		paths := fl.Args()
		catalog, err := lintCatalog(*dirFlag)
		if err != nil {
			return err
		}
		if len(paths) == 0 {
			dir, err := dataDir(*dirFlag)
			if err != nil {
				return err
			}
			paths = []string{files{dir}.policy()}
		}
		known := catalogKnows(catalog)
		problems := 0
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			pol, err := rules.ParsePolicy(p, data)
			if err != nil {
				// Every error names file:line and field; print each.
				for _, e := range splitJoined(err) {
					fmt.Fprintln(stdout, e)
					problems++
				}
				continue
			}
			for _, f := range rules.LintPolicy(pol, known) {
				fmt.Fprintln(stdout, f)
				problems++
			}
			ref := pol.Ref()
			fmt.Fprintf(stdout, "%s: policy %s version %s sha256 %s, %d rules\n", p, ref.ID, ref.Version, ref.SHA256, len(pol.Rules))
		}
		if problems > 0 {
			fmt.Fprintf(stdout, "%d problem(s)\n", problems)
			return &exitError{code: exitFailure}
		}
		return nil
	default:
		return usagef("unknown subcommand %q: want test, lint", args[0])
	}
}

// lintCatalog loads the built-in packs plus the user packs of the data
// directory's aarm.yaml, when there is one.
func lintCatalog(dirFlag string) (*rules.Catalog, error) {
	opts := rules.CatalogOptions{Builtin: true}
	if dir, err := dataDir(dirFlag); err == nil {
		if cfg, err := loadConfig(dir, ""); err == nil {
			opts.Paths, opts.InternalDomains = cfg.RulePaths, cfg.InternalDomains
			opts.MCPServers, opts.MCPMetaTools, opts.LLMHosts = cfg.MCPServers, cfg.MCPMetaTools, cfg.LLMHosts
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return rules.LoadCatalog(opts)
}

// catalogKnows reports whether a tool/operation pattern names something the
// catalog defines; the generic http fallback and MCP tools (named by their
// server at run time) are always known.
func catalogKnows(c *rules.Catalog) func(tool, op string) bool {
	ops := map[string][]string{}
	for _, p := range c.Packs() {
		for _, o := range p.Operations {
			ops[p.Tool] = append(ops[p.Tool], o.Operation)
		}
	}
	known := rules.LintKnownFrom(ops)
	return func(tool, op string) bool {
		return tool == "http" || strings.HasPrefix(tool, "mcp:") || known(tool, op)
	}
}

// splitJoined lists the errors inside an errors.Join.
func splitJoined(err error) []string {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// cmdRules explains how a raw HTTP request maps to an action, or lists the
// catalog.
func cmdRules(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: explain REQUEST_FILE, list")
	}
	fl := newFlags("rules "+args[0], stderr)
	dirFlag := fl.String("dir", "", "data directory, for the rule packs aarm.yaml adds (default $AARM_HOME or ~/.aarm)")
	asJSON := fl.Bool("json", false, "print JSON")
	if err := parseFlags(fl, args[1:]); err != nil {
		return err
	}
	catalog, err := lintCatalog(*dirFlag)
	if err != nil {
		return err
	}
	switch args[0] {
	case "explain":
		if fl.NArg() != 1 {
			return usagef("rules explain wants one request file (.http or curl --trace-ascii output; - for stdin)")
		}
		name := fl.Arg(0)
		var data []byte
		if name == "-" {
			data, err = io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
		} else {
			data, err = os.ReadFile(name)
		}
		if err != nil {
			return err
		}
		ex, err := rules.Explain(catalog, name, data, inspect.Limits{MaxBody: config.DefaultMaxBody, MaxRatio: config.DefaultMaxExpansionRatio})
		if err != nil {
			return err
		}
		return printJSON(stdout, ex)
	case "list":
		packs := catalog.Packs()
		if *asJSON {
			return printJSON(stdout, packs)
		}
		for _, p := range packs {
			fmt.Fprintf(stdout, "%s  (%s)  %s\n", p.Tool, strings.Join(p.Hosts, ", "), p.File)
			for _, o := range p.Operations {
				fmt.Fprintf(stdout, "    %-36s %-8s %-14s %s\n", o.Operation, o.Effect, strings.Join(o.Methods, ","), o.Path)
			}
		}
		return nil
	default:
		return usagef("unknown subcommand %q: want explain, list", args[0])
	}
}
