package ledger

import (
	"bytes"
	"testing"

	"github.com/aarmproxy/aarm"
)

// BenchmarkReceiptCPU splits the CPU cost of one append into its parts:
// canonical encoding and signing with each key type.
func BenchmarkReceiptCPU(b *testing.B) {
	r := sampleReceipt("s", "a", aarm.Allow)
	c, err := CanonicalBytes(r)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("canonical", func(b *testing.B) {
		for b.Loop() {
			if _, err := CanonicalBytes(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, alg := range []string{KeyECDSAP256, KeyEd25519} {
		k := newKey(b, alg)
		b.Run("sign-"+alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := k.sv.SignMessage(bytes.NewReader(c)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
