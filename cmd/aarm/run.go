package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/aarmproxy/aarm"
	"github.com/aarmproxy/aarm/certs"
	"github.com/aarmproxy/aarm/config"
	"github.com/aarmproxy/aarm/gate"
	"github.com/aarmproxy/aarm/inspect"
	"github.com/aarmproxy/aarm/internal/fsx"
	"github.com/aarmproxy/aarm/ledger"
	"github.com/aarmproxy/aarm/proxy"
	"github.com/aarmproxy/aarm/rules"
	"github.com/aarmproxy/aarm/telemetry"
	"github.com/aarmproxy/aarm/ui"
)

// shutdownGrace is how long in-flight requests get to finish on SIGTERM.
const shutdownGrace = 15 * time.Second

// runAddrs is written to run/addr.json once both listeners are up.
type runAddrs struct {
	Proxy string `json:"proxy"`
	Admin string `json:"admin"`
	PID   int    `json:"pid"`
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fl := newFlags("run", stderr)
	dirFlag := fl.String("dir", "", "data directory (default $AARM_HOME or ~/.aarm)")
	cfgFlag := fl.String("config", "", "config file (default DIR/aarm.yaml)")
	listen := fl.String("listen", "", "proxy listen address (overrides the config)")
	admin := fl.String("admin", "", "admin listen address (overrides the config)")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usagef("unexpected arguments %q", fl.Args())
	}
	dir, err := dataDir(*dirFlag)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(dir, *cfgFlag)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *admin != "" {
		cfg.Admin = *admin
	}
	log := newLogger(stderr, cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, dir, cfg, log)
}

func loadConfig(dir, path string) (*config.Config, error) {
	if path == "" {
		path = files{dir}.config()
		if ok, err := fsx.Exists(path); err != nil {
			return nil, err
		} else if !ok {
			return config.Parse(dir, "", nil)
		}
	}
	return config.Load(dir, path)
}

func newLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve wires every part and runs until ctx ends.
func serve(ctx context.Context, dir string, cfg *config.Config, log *slog.Logger) error {
	f := files{dir}
	if ok, _ := fsx.Exists(f.ca()); !ok {
		return fmt.Errorf("no CA in %s: run `aarm init --dir %s` first", dir, dir)
	}
	ca, err := certs.Load(dir)
	if err != nil {
		return err
	}
	adminToken, err := readSecret(f.adminToken())
	if err != nil {
		return fmt.Errorf("admin token: %w (run `aarm init --dir %s`)", err, dir)
	}
	sessionKey, err := readKeyFile(f.sessionKey())
	if err != nil {
		return err
	}
	signerPEM, err := os.ReadFile(f.signingKey())
	if err != nil {
		return fmt.Errorf("signing key: %w (run `aarm init --dir %s`)", err, dir)
	}
	signer, err := ledger.LoadSigner(signerPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", f.signingKey(), err)
	}
	roots, err := upstreamRoots(cfg.UpstreamCAFile)
	if err != nil {
		return err
	}
	catalog, err := rules.NewCatalogStore(rules.CatalogOptions{Builtin: true, Paths: cfg.RulePaths, InternalDomains: cfg.InternalDomains,
		MCPServers: cfg.MCPServers, MCPMetaTools: cfg.MCPMetaTools, LLMHosts: cfg.LLMHosts})
	if err != nil {
		return err
	}
	policies, err := rules.NewPolicyStore(cfg.PolicyFile, rules.DefaultPolicy)
	if err != nil {
		return err
	}

	// Bind both listeners before opening the database, so "port in use" is
	// the first and clearest error.
	proxyLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("proxy listener %s: %w", cfg.Listen, err)
	}
	defer proxyLn.Close()
	adminLn, err := net.Listen("tcp", cfg.Admin)
	if err != nil {
		return fmt.Errorf("admin listener %s: %w", cfg.Admin, err)
	}
	defer adminLn.Close()

	db, err := badger.Open(badger.DefaultOptions(f.db()).WithSyncWrites(true).WithLogger(nil))
	if err != nil {
		return fmt.Errorf("open database %s: %w (is another aarm running on this data directory?)", f.db(), err)
	}
	defer db.Close()

	// The checkpoint origin names this install for the life of its log: the
	// CA fingerprint is stable, printable and unique per install.
	led, err := ledger.Open(ctx, db, ledger.Options{Signer: signer, Origin: "aarm.local/" + originID(ca.Fingerprint()), Logger: log})
	if err != nil {
		return err
	}
	defer led.Close()
	sessions, err := gate.NewSessions(db, gate.SessionsOptions{Key: sessionKey, DefaultTTL: cfg.DefaultTTL, MaxTTL: cfg.MaxTTL})
	if err != nil {
		return err
	}
	defaultLevel, err := inspect.ParseLevel(cfg.DefaultClassification)
	if err != nil {
		return fmt.Errorf("context.default_classification: %w", err)
	}
	hostLevels := map[string]inspect.Level{}
	for h, l := range cfg.HostLevels {
		hostLevels[h], _ = inspect.ParseLevel(l) // validated by config
	}
	dashboardURL := cfg.DashboardURL
	if dashboardURL == "" {
		dashboardURL = "http://" + adminLn.Addr().String()
	}
	var hooks []gate.Webhook
	for _, n := range cfg.Notify {
		hooks = append(hooks, gate.Webhook{URL: n.URL, Format: n.Format})
	}
	var metrics *telemetry.Metrics
	g, err := gate.New(gate.Options{
		OnDecision: func(d aarm.Decision, a aarm.Action, took time.Duration) { metrics.Decision(d, a.Tool, took) },
		Sessions:   sessions, Mapper: catalog, Policy: policies, Ledger: led, DB: db,
		Limits:    inspect.Limits{MaxBody: cfg.MaxBody, MaxRatio: cfg.MaxExpansionRatio},
		DenyHosts: cfg.DenyHosts, AllowAnonymous: cfg.AllowAnonymous, Logger: log,
		Holds: gate.HoldOptions{
			MaxChain: cfg.MaxChain, RequiredApprovals: cfg.RequiredApprovals,
			Notify: gate.NewNotifier(hooks, dashboardURL, log),
		},
		Context: gate.ContextOptions{DefaultLevel: defaultLevel, TrustedHosts: cfg.TrustedHosts,
			PublicHosts: cfg.PublicHosts, HostLevels: hostLevels},
	})
	if err != nil {
		return err
	}
	defer g.Close()
	metrics = telemetry.New(telemetry.Sources{
		HoldsPending: func() map[string]int {
			n := map[string]int{}
			for _, h := range g.Holds(gate.HoldPending) {
				n[string(h.Source)]++
			}
			return n
		},
		LedgerSize: led.Size,
	})
	policies.OnReload = metrics.PolicyReload
	px, err := proxy.New(proxy.Options{
		CA: ca, Gate: g, Logger: log, Resolve: cfg.Resolve, RootCAs: roots,
		AllowPrivate: cfg.AllowPrivate, MaxBody: cfg.MaxBody, MaxInspectResponse: cfg.MaxInspectResponse,
		BodyPassthroughHosts: cfg.BodyPassthroughHosts, WebSocketPassthroughHosts: cfg.WebSocketPassthroughHosts,
		RefuseAddrs: []string{proxyLn.Addr().String(), adminLn.Addr().String()},
		DialTimeout: cfg.DialTimeout, TLSHandshakeTimeout: cfg.TLSHandshakeTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout, IdleConnTimeout: cfg.IdleConnTimeout,
		GateTimeout: cfg.GateTimeout, // holds are exempt: the gate reports them (proxy.HoldReporter)
	})
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(f.signingPub())
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	var approvers []ui.ApproverAccount
	for _, a := range cfg.Approvers {
		approvers = append(approvers, ui.ApproverAccount{Name: a.Name, PasswordHash: a.PasswordHash})
	}
	adminSrv, err := ui.New(ui.Options{
		AdminToken: adminToken, Sessions: sessions, Context: g, Logger: log,
		ProxyURL: "http://" + proxyLn.Addr().String(), CAFile: f.ca(),
		NoProxy: []string{adminLn.Addr().String()},
		Holds:   g, Receipts: led, Policy: policies, Approvers: approvers,
		ReceiptKeys:  [][]byte{pub},
		VerifyLedger: func(ctx context.Context) (*ledger.Report, error) { return ledger.Verify(ctx, db, [][]byte{pub}) },
		DashboardURL: dashboardURL, Metrics: metrics.Handler(),
	})
	if err != nil {
		return err
	}

	adminHTTP := &http.Server{Handler: adminSrv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	// Live-update streams would hold shutdown for the whole grace period.
	adminHTTP.RegisterOnShutdown(adminSrv.CloseStreams)
	errc := make(chan error, 2)
	go func() { errc <- px.Serve(proxyLn) }()
	go func() { errc <- adminHTTP.Serve(adminLn) }()

	catalog.Logger = log
	go watchPolicy(ctx, policies, catalog, log)

	addrs := runAddrs{Proxy: proxyLn.Addr().String(), Admin: adminLn.Addr().String(), PID: os.Getpid()}
	if err := writeAddrFile(f.addrFile(), addrs); err != nil {
		return err
	}
	defer os.Remove(f.addrFile())
	log.Info("aarm running", "proxy", addrs.Proxy, "admin", addrs.Admin, "dir", dir,
		"policy", policies.Current().Ref().ID, "policy_version", policies.Current().Ref().Version)

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", shutdownGrace)
	case serveErr = <-errc:
		log.Error("listener failed", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := px.Shutdown(sctx); err != nil {
		log.Warn("proxy shutdown", "err", err)
	}
	if err := adminHTTP.Shutdown(sctx); err != nil {
		log.Warn("admin shutdown", "err", err)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, net.ErrClosed) {
		return serveErr
	}
	return nil
}

// watchPolicy reloads the policy and the rule packs on SIGHUP and on file
// changes; an invalid file keeps the last good version in force.
func watchPolicy(ctx context.Context, store *rules.PolicyStore, catalog *rules.CatalogStore, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		if err := store.Watch(ctx); err != nil && ctx.Err() == nil {
			log.Warn("policy file watch stopped; SIGHUP still reloads", "err", err)
		}
	}()
	go func() {
		if err := catalog.Watch(ctx); err != nil && ctx.Err() == nil {
			log.Warn("rule pack watch stopped; SIGHUP still reloads", "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			// Both stores log their own results.
			_ = store.Reload()
			if err := catalog.Reload(); err != nil {
				log.Error("rule pack reload failed; keeping the last good catalog", "err", err)
			}
		}
	}
}

func upstreamRoots(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("upstream.ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("upstream.ca_file %s: no PEM certificates found", caFile)
	}
	return pool, nil
}

func readKeyFile(path string) ([]byte, error) {
	s, err := readSecret(path)
	if err != nil {
		return nil, fmt.Errorf("session key: %w (run `aarm init`)", err)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < gate.SessionKeySize {
		return nil, fmt.Errorf("session key %s is malformed: remove it and run `aarm init` (existing session tokens stop working)", path)
	}
	return b, nil
}

func writeAddrFile(path string, a runAddrs) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// originID is the first 16 hex digits of the CA fingerprint (hex is
// printable ASCII without spaces, as checkpoint origins must be).
func originID(fp string) string { return fp[:min(16, len(fp))] }
