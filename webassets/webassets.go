// Package webassets serves the browser side that ships inside the binary:
// the SDK bundle (built from sdk/js by its build.mjs and committed here, so
// `go build` needs no npm) at /sdk/synckairos.js, and the demo at /demo/.
package webassets

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

//go:embed synckairos.js
var sdkJS []byte

//go:embed demo
var demoFS embed.FS

// asset is one file ready to serve: its bytes, gzipped once at start-up,
// and a strong ETag.
type asset struct {
	body, gz []byte
	etag     string
	ctype    string
	cache    string
}

// The bundle may be cached a little (clients revalidate by ETag after 5
// minutes); the demo pages always revalidate, so a new build shows at once.
const (
	cacheSDK  = "public, max-age=300"
	cacheDemo = "no-cache"
)

var (
	sdk  = newAsset(sdkJS, "text/javascript; charset=utf-8", cacheSDK)
	demo = loadDemo()
)

func newAsset(b []byte, ctype, cache string) *asset {
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = w.Write(b)
	_ = w.Close()
	sum := sha256.Sum256(b)
	a := &asset{body: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: ctype, cache: cache}
	if gz.Len() < len(b) {
		a.gz = gz.Bytes()
	}
	return a
}

var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".png":  "image/png",
	".svg":  "image/svg+xml",
}

func loadDemo() map[string]*asset {
	m := map[string]*asset{}
	_ = fs.WalkDir(demoFS, "demo", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := demoFS.ReadFile(p)
		if err != nil {
			return err
		}
		ct := types[path.Ext(p)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		m[strings.TrimPrefix(p, "demo/")] = newAsset(b, ct, cacheDemo)
		return nil
	})
	return m
}

// Bundle returns the embedded SDK bundle (for tests and tools).
func Bundle() []byte { return sdkJS }

// SDK serves GET /sdk/synckairos.js.
func SDK(ctx *fasthttp.RequestCtx) { serve(ctx, sdk) }

// Demo serves GET /demo/ and /demo/{file}; a name it does not hold is 404.
func Demo(notFound fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		name, _ := ctx.UserValue("file").(string)
		if name == "" {
			name = "index.html"
		}
		a := demo[name]
		if a == nil {
			notFound(ctx)
			return
		}
		serve(ctx, a)
	}
}

func serve(ctx *fasthttp.RequestCtx, a *asset) {
	h := &ctx.Response.Header
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", a.cache)
	h.Set("Vary", "Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && bytes.Contains(inm, []byte(a.etag)) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	h.SetContentType(a.ctype)
	if a.gz != nil && ctx.Request.Header.HasAcceptEncoding("gzip") {
		h.Set("Content-Encoding", "gzip")
		ctx.SetBody(a.gz)
		return
	}
	ctx.SetBody(a.body)
}
