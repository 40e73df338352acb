package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/dgraph-io/badger/v4"

	"github.com/aarmproxy/aarm/ledger"
)

// cmdVerify checks the receipt ledger offline: every signature, the hash
// chain, the Merkle root against every checkpoint and the indexes; or an
// exported bundle with only the public key.
func cmdVerify(args []string, stdout, stderr io.Writer) error {
	fl := newFlags("verify", stderr)
	dirFlag := fl.String("dir", "", "data directory (default $AARM_HOME or ~/.aarm)")
	bundle := fl.String("bundle", "", "verify an exported JSONL bundle instead of the data directory")
	var pubkeys stringList
	fl.Var(&pubkeys, "pubkey", "public key PEM file (repeatable; default DIR/signing-pub.pem and DIR/old-keys/*.pem)")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usagef("unexpected arguments %q", fl.Args())
	}
	var keys [][]byte
	for _, p := range pubkeys {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("public key: %w", err)
		}
		keys = append(keys, b)
	}
	ctx := context.Background()
	var report *ledger.Report
	if *bundle != "" {
		if len(keys) == 0 {
			return usagef("--bundle needs --pubkey FILE (the signing-pub.pem of the install that signed it)")
		}
		f, err := os.Open(*bundle)
		if err != nil {
			return err
		}
		defer f.Close()
		report, err = ledger.VerifyBundle(f, keys)
		if err != nil {
			return err
		}
	} else {
		dir, err := dataDir(*dirFlag)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			keys, err = installKeys(dir)
			if err != nil {
				return err
			}
		}
		db, err := badger.Open(badger.DefaultOptions(files{dir}.db()).WithReadOnly(true).WithLogger(nil))
		if err != nil {
			return fmt.Errorf("open %s read-only: %w (stop `aarm run` first, or verify an export: aarm receipts export > b.jsonl && aarm verify --bundle b.jsonl --pubkey %s)", files{dir}.db(), err, files{dir}.signingPub())
		}
		defer db.Close()
		report, err = ledger.Verify(ctx, db, keys)
		if err != nil {
			return err
		}
	}
	fmt.Fprint(stdout, report.String())
	if !report.OK() {
		return errors.New("verification failed")
	}
	return nil
}

// installKeys returns the install's current public key and any kept from
// before a rotation (DIR/old-keys/*.pem).
func installKeys(dir string) ([][]byte, error) {
	f := files{dir}
	cur, err := os.ReadFile(f.signingPub())
	if err != nil {
		return nil, fmt.Errorf("public key: %w (pass --pubkey)", err)
	}
	keys := [][]byte{cur}
	old, _ := os.ReadDir(f.path("old-keys"))
	for _, e := range old {
		b, err := os.ReadFile(f.path("old-keys/" + e.Name()))
		if err != nil {
			return nil, err
		}
		keys = append(keys, b)
	}
	return keys, nil
}
