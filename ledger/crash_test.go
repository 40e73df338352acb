package ledger

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
)

const crashHelperEnv = "AARM_LEDGER_CRASH_HELPER_DIR"

// TestCrashHelper is the child process of TestCrashDurability: it appends
// under concurrent load and prints "<index> <receipt id>" for every Append
// that has returned, until it is killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashDurability")
	}
	priv, err := os.ReadFile(filepath.Join(dir, "signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sv, err := LoadSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, filepath.Join(dir, "db"))
	l, err := Open(context.Background(), db, Options{Signer: sv, Origin: "aarm.test/ledger", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := sampleReceipt(fmt.Sprint("s", w), fmt.Sprintf("%d-%d-%d", os.Getpid(), w, i), aarm.Allow)
				pos, err := l.Append(context.Background(), r)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(3)
				}
				mu.Lock()
				// One write syscall per line: what is printed has returned.
				fmt.Fprintf(os.Stdout, "%d %s\n", pos.Index, r.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped with -short")
	}
	t.Parallel()
	dir := t.TempDir()
	k := newKey(t, "")
	if err := os.WriteFile(filepath.Join(dir, "signing-key.pem"), k.priv, 0o600); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Let it run until it has acknowledged some appends, then a random
		// while longer, and kill it without warning.
		deadline := time.After(time.Duration(200+rand.IntN(600)) * time.Millisecond)
		n := 0
	run:
		for {
			select {
			case ln, ok := <-lines:
				if !ok {
					t.Fatalf("round %d: helper exited early: %v", round, cmd.Wait())
				}
				var i uint64
				var id string
				if _, err := fmt.Sscanf(ln, "%d %s", &i, &id); err != nil {
					t.Fatalf("round %d: helper line %q: %v", round, ln, err)
				}
				acked[i] = id
				n++
			case <-deadline:
				if n > 0 {
					break run
				}
				deadline = time.After(50 * time.Millisecond)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for ln := range lines { // lines already written before the kill
			var i uint64
			var id string
			if _, err := fmt.Sscanf(ln, "%d %s", &i, &id); err == nil {
				acked[i] = id
			}
		}
		_ = cmd.Wait()

		db := openDB(t, filepath.Join(dir, "db"))
		l := openLedger(t, db, k)
		for i, id := range acked {
			r, err := l.GetIndex(i)
			if err != nil {
				t.Fatalf("round %d: acknowledged append %d (%s) lost: %v", round, i, id, err)
			}
			if r.ID != id {
				t.Fatalf("round %d: index %d holds %s, acknowledged %s", round, i, r.ID, id)
			}
		}
		l.Close()
		rep, err := Verify(t.Context(), db, [][]byte{k.pub})
		if err != nil || !rep.OK() {
			t.Fatalf("round %d: Verify: %v %s", round, err, rep)
		}
		t.Logf("round %d: %d acknowledged this round, %d total, log size %d", round, n, len(acked), rep.Receipts)
		db.Close()
	}
}
