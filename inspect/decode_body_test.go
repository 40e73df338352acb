package inspect

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
)

func gzipBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func zlibBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func flateBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(b)
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func brotliBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := brotli.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

type bodyCase struct {
	name     string
	encoding string
	raw      []byte
	lim      Limits
	want     string // when wantErr is nil
	wantErr  error
	stage    string
}

// bodyCases are shared with FuzzDecodeBody as seeds.
func bodyCases(tb testing.TB) []bodyCase {
	msg := []byte(`{"title":"hello, world","body":"` + strings.Repeat("abc ", 50) + `"}`)
	gz := gzipBytes(tb, msg)
	return []bodyCase{
		{name: "no encoding", raw: msg, want: string(msg)},
		{name: "identity", encoding: "identity", raw: msg, want: string(msg)},
		{name: "gzip", encoding: "gzip", raw: gz, want: string(msg)},
		{name: "x-gzip upper case", encoding: " X-GZIP ", raw: gz, want: string(msg)},
		{name: "deflate zlib", encoding: "deflate", raw: zlibBytes(tb, msg), want: string(msg)},
		{name: "deflate raw", encoding: "deflate", raw: flateBytes(tb, msg), want: string(msg)},
		{name: "br", encoding: "br", raw: brotliBytes(tb, msg), want: string(msg)},
		// "gzip, br": gzip applied first, then br; undone in reverse.
		{name: "stacked gzip, br", encoding: "gzip, br", raw: brotliBytes(tb, gz), want: string(msg)},
		{name: "stacked with identity", encoding: "identity, gzip, deflate", raw: zlibBytes(tb, gz), want: string(msg)},
		{name: "empty body with coding", encoding: "gzip", raw: nil, want: ""},
		{name: "gzip concatenated members", encoding: "gzip", raw: append(gzipBytes(tb, []byte("ab")), gzipBytes(tb, []byte("cd"))...), want: "abcd"},
		{name: "unknown coding", encoding: "zstd", raw: msg, wantErr: ErrUnsupportedEncoding, stage: StageContentEncoding},
		{name: "unknown in stack", encoding: "gzip, compress", raw: gz, wantErr: ErrUnsupportedEncoding, stage: StageContentEncoding},
		{name: "too many codings", encoding: "gzip,gzip,gzip,gzip,gzip", raw: gz, wantErr: ErrUnsupportedEncoding, stage: StageContentEncoding},
		{name: "truncated gzip", encoding: "gzip", raw: gz[:len(gz)-6], wantErr: ErrMalformed, stage: StageContentEncoding},
		{name: "gzip header only", encoding: "gzip", raw: gz[:10], wantErr: ErrMalformed, stage: StageContentEncoding},
		{name: "not gzip", encoding: "gzip", raw: msg, wantErr: ErrMalformed, stage: StageContentEncoding},
		{name: "gzip trailing garbage", encoding: "gzip", raw: append(append([]byte{}, gz...), "garbage!!"...), wantErr: ErrMalformed, stage: StageContentEncoding},
		{name: "truncated br", encoding: "br", raw: brotliBytes(tb, msg)[:20], wantErr: ErrMalformed, stage: StageContentEncoding},
		{name: "truncated zlib", encoding: "deflate", raw: zlibBytes(tb, msg)[:20], wantErr: ErrMalformed, stage: StageContentEncoding},
		{name: "ratio exceeded", encoding: "gzip", raw: gzipBytes(tb, make([]byte, 64<<10)), wantErr: ErrExpansion, stage: StageContentEncoding},
		{name: "ratio allowed when raised", encoding: "gzip", raw: gzipBytes(tb, make([]byte, 64<<10)), lim: Limits{MaxRatio: 1000}, want: string(make([]byte, 64<<10))},
		{name: "decoded over MaxBody", encoding: "gzip", raw: gzipBytes(tb, []byte(strings.Repeat("x", 5000))), lim: Limits{MaxBody: 4000, MaxRatio: 1 << 20}, wantErr: ErrTooLarge, stage: StageContentEncoding},
		{name: "raw over MaxBody", raw: msg, lim: Limits{MaxBody: 10}, wantErr: ErrTooLarge, stage: StageBody},
	}
}

func TestDecodeBody(t *testing.T) {
	t.Parallel()
	for _, tc := range bodyCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeBody(tc.encoding, tc.raw, tc.lim)
			checkDecodeErr(t, err, tc.wantErr, tc.stage)
			if tc.wantErr == nil && string(got) != tc.want {
				t.Errorf("got %d bytes %.40q, want %d bytes %.40q", len(got), got, len(tc.want), tc.want)
			}
		})
	}
}

// checkDecodeErr asserts err is nil when want is nil, else a *DecodeError at
// stage wrapping want.
func checkDecodeErr(t *testing.T, err, want error, stage string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("got error %T %v, want *DecodeError", err, err)
	}
	if stage != "" && de.Stage != stage {
		t.Errorf("got stage %q, want %q (%v)", de.Stage, stage, err)
	}
}

// TestDecodeBodyGzipBomb is deliberately not parallel: it measures the
// bytes allocated while refusing 10 MB of zeros gzip-compressed (~10 KB).
func TestDecodeBodyGzipBomb(t *testing.T) {
	bomb := gzipBytes(t, make([]byte, 10<<20))
	if len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes, expected a small one", len(bomb))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := DecodeBody("gzip", bomb, Limits{})
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	checkDecodeErr(t, err, ErrExpansion, StageContentEncoding)
	if elapsed > 2*time.Second {
		t.Errorf("took %v, want well under 2s", elapsed)
	}
	// The bound is DefaultMaxRatio × ~10 KB ≈ 1 MB; buffer growth may double
	// it. Expanding the bomb would allocate 10 MB or more.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("allocated %d bytes refusing the bomb, want < 4 MiB", alloc)
	}
	// Stacked: the same bomb inside br is refused at the inner stage too.
	_, err = DecodeBody("gzip, br", brotliBytes(t, bomb), Limits{})
	checkDecodeErr(t, err, ErrExpansion, StageContentEncoding)
}
