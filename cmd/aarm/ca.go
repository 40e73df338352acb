package main

import (
	"fmt"
	"io"

	"github.com/aarmproxy/aarm/certs"
)

func cmdCA(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: path, install, uninstall")
	}
	fl := newFlags("ca "+args[0], stderr)
	dirFlag := fl.String("dir", "", "data directory (default $AARM_HOME or ~/.aarm)")
	if err := parseFlags(fl, args[1:]); err != nil {
		return err
	}
	dir, err := dataDir(*dirFlag)
	if err != nil {
		return err
	}
	path := files{dir}.ca()
	switch args[0] {
	case "path":
		fmt.Fprintln(stdout, path)
		return nil
	case "install", "uninstall":
		if _, err := certs.Load(dir); err != nil {
			return err
		}
		do := certs.Install
		if args[0] == "uninstall" {
			do = certs.Uninstall
		}
		done, err := do(path, certs.InstallOptions{})
		for _, d := range done {
			fmt.Fprintln(stdout, d)
		}
		return err
	default:
		return usagef("unknown subcommand %q: want path, install, uninstall", args[0])
	}
}
