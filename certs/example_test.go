package certs_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/aarmproxy/aarm/certs"
)

// The proxy's view: make sure the data dir has a CA, load it, and build the
// server side of an intercepted connection to the CONNECT target.
func ExampleCA_TLSConfigFor() {
	tmp, err := os.MkdirTemp("", "aarm-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "data")

	if _, err := certs.Create(dir, "example"); err != nil {
		log.Fatal(err)
	}
	ca, err := certs.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	conf, err := ca.TLSConfigFor("API.GitHub.com:443", []string{"h2", "http/1.1"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(conf.Certificates[0].Leaf.DNSNames, conf.NextProtos, ca.Minted())
	// Output: [api.github.com] [h2 http/1.1] 1
}
