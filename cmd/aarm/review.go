package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/ui"
)

// cmdApprovals lists and decides held actions through the admin API. The
// approver is "admin" (the admin token) unless --as names a configured
// approver, recorded as such in the approval receipt.
func cmdApprovals(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: list, approve ID, deny ID --reason TEXT")
	}
	fl := newFlags("approvals "+args[0], stderr)
	dirFlag := fl.String("dir", "", "data directory (default $AARM_HOME or ~/.aarm)")
	switch args[0] {
	case "list":
		state := fl.String("state", "pending", "pending, approved, denied, timed_out, ... or all")
		asJSON := fl.Bool("json", false, "print JSON")
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		c, err := newAdminClient(*dirFlag)
		if err != nil {
			return err
		}
		st := *state
		if st == "all" {
			st = ""
		}
		var raw json.RawMessage
		if err := c.do(http.MethodGet, "/api/v1/approvals?state="+url.QueryEscape(st), nil, &raw); err != nil {
			return err
		}
		if *asJSON {
			_, err := stdout.Write(raw)
			return err
		}
		var out struct {
			Holds []*gate.Hold `json:"holds"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		if len(out.Holds) == 0 {
			fmt.Fprintln(stdout, "no holds")
			return nil
		}
		fmt.Fprintf(stdout, "%-32s %-8s %-9s %-8s %-30s %-10s %s\n", "ID", "SOURCE", "STATE", "RISK", "ACTION", "LEFT", "REASON")
		for _, h := range out.Holds {
			left := "-"
			if h.State == gate.HoldPending {
				left = time.Until(h.ExpiresAt).Round(time.Second).String()
			}
			fmt.Fprintf(stdout, "%-32s %-8s %-9s %-8s %-30s %-10s %s\n", h.ID, h.Source, h.State, h.Decision.RiskLevel,
				truncate(h.Action.Tool+"/"+h.Action.Operation+" "+h.Action.Target, 30), left, h.Decision.Reason)
		}
		return nil
	case "approve", "deny":
		reason := fl.String("reason", "", "why (required to deny)")
		as := fl.String("as", "", "approver name to record (default admin)")
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		if fl.NArg() != 1 {
			return usagef("approvals %s wants one hold ID", args[0])
		}
		if args[0] == "deny" && strings.TrimSpace(*reason) == "" {
			return usagef("deny needs --reason TEXT")
		}
		c, err := newAdminClient(*dirFlag)
		if err != nil {
			return err
		}
		c.approver = *as
		var out struct {
			Hold *gate.Hold `json:"hold"`
		}
		var raw json.RawMessage
		if err := c.do(http.MethodPost, "/api/v1/approvals/"+url.PathEscape(fl.Arg(0))+"/"+args[0], map[string]string{"reason": *reason}, &raw); err != nil {
			return err
		}
		if json.Unmarshal(raw, &out) == nil && out.Hold != nil {
			fmt.Fprintf(stdout, "hold %s: %s (%s)\n", out.Hold.ID, out.Hold.State, out.Hold.Resolution)
			return nil
		}
		_, err = stdout.Write(raw)
		return err
	default:
		return usagef("unknown subcommand %q: want list, approve, deny", args[0])
	}
}

// cmdReceipts lists, shows and exports receipts through the admin API.
func cmdReceipts(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: list, show ID, export")
	}
	fl := newFlags("receipts "+args[0], stderr)
	dirFlag := fl.String("dir", "", "data directory (default $AARM_HOME or ~/.aarm)")
	session := fl.String("session", "", "only this session's receipts")
	since := fl.String("since", "", "only receipts at or after this time (RFC 3339, or a duration ago like 2h)")
	switch args[0] {
	case "list":
		verdict := fl.String("verdict", "", "only this verdict (ALLOW, DENY, ...)")
		limit := fl.Int("limit", 50, "at most this many, newest first")
		asJSON := fl.Bool("json", false, "print JSON")
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		q, err := receiptQuery(*session, *since)
		if err != nil {
			return err
		}
		if *verdict != "" {
			q.Set("verdict", strings.ToUpper(*verdict))
		}
		q.Set("limit", fmt.Sprint(*limit))
		c, err := newAdminClient(*dirFlag)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.do(http.MethodGet, "/api/v1/receipts?"+q.Encode(), nil, &raw); err != nil {
			return err
		}
		if *asJSON {
			_, err := stdout.Write(raw)
			return err
		}
		var out struct {
			Receipts []*aarm.Receipt `json:"receipts"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-7s %-20s %-10s %-8s %-14s %-32s %s\n", "INDEX", "TIME", "KIND", "VERDICT", "AGENT", "ACTION", "REASON")
		for _, r := range out.Receipts {
			v := ""
			reason := ""
			if r.Decision != nil {
				v, reason = r.Decision.Verdict.String(), r.Decision.Reason
			}
			fmt.Fprintf(stdout, "%-7d %-20s %-10s %-8s %-14s %-32s %s\n", r.Ledger.Index, r.Time.Local().Format("2006-01-02 15:04:05"), r.Kind, v,
				truncate(r.Requester.Agent, 14), truncate(r.Action.Tool+"/"+r.Action.Operation+" "+r.Action.Target, 32), truncate(reason, 80))
		}
		return nil
	case "show":
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		if fl.NArg() != 1 {
			return usagef("receipts show wants one receipt ID")
		}
		c, err := newAdminClient(*dirFlag)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.do(http.MethodGet, "/api/v1/receipts/"+url.PathEscape(fl.Arg(0)), nil, &raw); err != nil {
			return err
		}
		_, err = stdout.Write(raw)
		return err
	case "export":
		format := fl.String("format", "jsonl", "bundle format (jsonl)")
		if err := parseFlags(fl, args[1:]); err != nil {
			return err
		}
		if *format != "jsonl" {
			return usagef("--format: only jsonl is supported")
		}
		q, err := receiptQuery(*session, *since)
		if err != nil {
			return err
		}
		c, err := newAdminClient(*dirFlag)
		if err != nil {
			return err
		}
		return c.stream("/api/v1/receipts/export?"+q.Encode(), stdout)
	default:
		return usagef("unknown subcommand %q: want list, show, export", args[0])
	}
}

func receiptQuery(session, since string) (url.Values, error) {
	q := url.Values{}
	if session != "" {
		q.Set("session", session)
	}
	if since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			d, derr := time.ParseDuration(since)
			if derr != nil {
				return nil, usagef("--since %q: want RFC 3339 (2026-01-02T15:04:05Z) or a duration (2h)", since)
			}
			t = time.Now().Add(-d)
		}
		q.Set("since", t.UTC().Format(time.RFC3339))
	}
	return q, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// cmdApprovers makes password hashes for dashboard approvers.
func cmdApprovers(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "hash" {
		return usagef("want: approvers hash (reads the password from stdin)")
	}
	b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
	if err != nil {
		return err
	}
	h, err := ui.HashPassword(strings.TrimRight(string(b), "\r\n"))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h)
	return nil
}
