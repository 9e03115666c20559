package webassets

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// maxBundleGz is the budget: the SDK is at most 8 KB min+gzip.
const maxBundleGz = 8 * 1024

// TestBundleSize measures the committed (minified) bundle gzipped at -9.
func TestBundleSize(t *testing.T) {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = w.Write(sdkJS)
	_ = w.Close()
	t.Logf("synckairos.js: %d bytes minified, %d bytes gzipped", len(sdkJS), b.Len())
	if len(sdkJS) == 0 || !bytes.Contains(sdkJS, []byte("SyncKairosError")) {
		t.Fatalf("the embedded bundle is empty or not the SDK (%d bytes)", len(sdkJS))
	}
	if b.Len() > maxBundleGz {
		t.Fatalf("bundle is %d bytes min+gzip, over the %d budget", b.Len(), maxBundleGz)
	}
}

// TestBundleFresh: the committed bundle is what sdk/js/src builds to now.
func TestBundleFresh(t *testing.T) {
	dir, _ := filepath.Abs("../sdk/js")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("SKIPPED: node is not installed, so the committed bundle was not compared with a fresh build (install Node.js >= 20, then npm --prefix sdk/js ci)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "esbuild")); err != nil {
		t.Skip("SKIPPED: sdk/js/node_modules is missing, so the committed bundle was not compared with a fresh build (run npm --prefix sdk/js ci, or make test)")
	}
	out, err := exec.Command(node, filepath.Join(dir, "build.mjs"), "--check").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}
