package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/aarmproxy/aarm/certs"
	"github.com/aarmproxy/aarm/config"
	"github.com/aarmproxy/aarm/internal/fsx"
	"github.com/aarmproxy/aarm/ledger"
	"github.com/aarmproxy/aarm/rules"
)

func cmdInit(args []string, stdout, stderr io.Writer) error {
	fl := newFlags("init", stderr)
	dirFlag := fl.String("dir", "", "data directory (default $AARM_HOME or ~/.aarm)")
	name := fl.String("name", "", "name of this install, shown in the CA certificate")
	keyAlg := fl.String("signing-key", "ecdsa-p256", "receipt signing key type: ecdsa-p256 or ed25519")
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
	created, err := initDataDir(dir, *name, *keyAlg)
	if err != nil {
		return err
	}
	if len(created) == 0 {
		fmt.Fprintf(stdout, "aarm is already initialised in %s; nothing changed.\n", dir)
		return nil
	}
	fmt.Fprintf(stdout, "Initialised aarm in %s:\n", dir)
	for _, c := range created {
		fmt.Fprintf(stdout, "  created %s\n", c)
	}
	fmt.Fprintf(stdout, "\nNext: aarm run --dir %s\n", dir)
	return nil
}

// initDataDir creates what is missing in dir and returns what it created.
// Existing files are never overwritten, so running it twice changes nothing.
func initDataDir(dir, name, keyAlg string) ([]string, error) {
	f := files{dir}
	var created []string
	if err := fsx.EnsureDir(dir, 0o700); err != nil {
		return nil, err
	}
	caNew, err := certs.Create(dir, name)
	if err != nil {
		return nil, err
	}
	if caNew {
		created = append(created, "ca.pem (local CA certificate: trust it in agents with the env lines of 'aarm env')", "ca-key.pem (0600)")
	}

	switch hasKey, err := fsx.Exists(f.signingKey()); {
	case err != nil:
		return nil, err
	case !hasKey:
		priv, pub, err := ledger.GenerateSigningKey(keyAlg)
		if err != nil {
			return nil, err
		}
		if err := fsx.WriteNew(f.signingKey(), priv, 0o600); err != nil {
			return nil, err
		}
		if err := writeIfMissing(f.signingPub(), pub, 0o644); err != nil {
			return nil, err
		}
		created = append(created, "signing-key.pem (receipt signing key, 0600)", "signing-pub.pem (give this to whoever verifies receipts)")
	}

	for _, s := range []struct {
		path, what string
		size       int
	}{{f.adminToken(), "admin-token (bearer token for the admin API and dashboard, 0600)", 32}, {f.sessionKey(), "session-key (signs session tokens, 0600)", 32}} {
		ok, err := writeSecretIfMissing(s.path, s.size)
		if err != nil {
			return nil, err
		}
		if ok {
			created = append(created, s.what)
		}
	}

	for _, d := range []struct {
		path, what string
		data       []byte
	}{{f.config(), "aarm.yaml (configuration, commented)", config.Default}, {f.policy(), "policy.yaml (the default policy, commented)", rules.DefaultPolicy}} {
		if ok, err := fsx.Exists(d.path); err != nil {
			return nil, err
		} else if !ok {
			if err := fsx.WriteNew(d.path, d.data, 0o600); err != nil {
				return nil, err
			}
			created = append(created, d.what)
		}
	}
	for _, d := range []string{f.runDir(), f.db()} {
		if err := fsx.EnsureDir(d, 0o700); err != nil {
			return nil, err
		}
	}
	return created, nil
}

func writeSecretIfMissing(path string, size int) (bool, error) {
	if ok, err := fsx.Exists(path); err != nil || ok {
		return false, err
	}
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		return false, err
	}
	return true, fsx.WriteNew(path, []byte(base64.RawURLEncoding.EncodeToString(b)+"\n"), 0o600)
}

func writeIfMissing(path string, data []byte, perm os.FileMode) error {
	err := fsx.WriteNew(path, data, perm)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}
