package ledger

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
)

// BenchmarkAppend measures durable appends (SyncWrites on, a real directory)
// with 1, 16 and 64 concurrent writers, reporting receipts/s and the p99
// latency of one Append. Issue 5 targets >= 20,000 receipts/s at 64 writers.
func BenchmarkAppend(b *testing.B) {
	cases := []struct {
		writers int
		alg     string
	}{{1, KeyECDSAP256}, {16, KeyECDSAP256}, {64, KeyECDSAP256}, {64, KeyEd25519}}
	for _, c := range cases {
		writers := c.writers
		b.Run(fmt.Sprintf("writers=%d/%s", writers, c.alg), func(b *testing.B) {
			db := openDB(b, b.TempDir())
			defer db.Close()
			k := newKey(b, c.alg)
			l := openLedger(b, db, k)
			defer l.Close()
			// Each writer is one agent session recording what a proxy
			// records: a decision (ALLOW) receipt for each new action, then
			// its outcome, so the in-flight marker is set and cleared and
			// the session and action indexes get a key per receipt.
			tmpl := sampleReceipt("", "", aarm.Allow)
			var next atomic.Int64
			lat := make([][]time.Duration, writers)
			var wg sync.WaitGroup
			b.ResetTimer()
			cpu0 := processCPU(b)
			start := time.Now()
			for w := range writers {
				wg.Go(func() {
					session := fmt.Sprint("bench-session-", w)
					for n := 0; next.Add(1) <= int64(b.N); n++ {
						r := *tmpl
						r.Requester.Session = session
						r.Action.ID = fmt.Sprintf("%s-action-%d", session, n/2)
						if n%2 == 1 {
							r.Kind, r.Decision = aarm.KindOutcome, nil
							r.Execution = &aarm.Execution{Status: "forwarded", StatusCode: 201, DurationMS: 12}
						}
						t0 := time.Now()
						if _, err := l.Append(context.Background(), &r); err != nil {
							b.Error(err)
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			cpu := processCPU(b) - cpu0
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "receipts/s")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
				// CPU time of the whole process per receipt, and the share
				// of the machine's cores it kept busy: on a shared machine
				// these vary less than receipts/s.
				b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/receipt")
				b.ReportMetric(cpu.Seconds()/elapsed.Seconds()/float64(runtime.NumCPU())*100, "%cpu")
			}
		})
	}
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
