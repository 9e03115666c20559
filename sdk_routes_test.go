package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/synckairos/synckairos/webassets"
)

// TestSDKAndDemoRoutes: the embedded bundle and demo are served with their
// types, cache headers and ETags, gzipped on request; unknown files are 404.
func TestSDKAndDemoRoutes(t *testing.T) {
	t.Parallel()
	s := startAPI(t, nil, nil)
	cases := []struct {
		path, ctype, cache, contains string
		status                       int
	}{
		{"/sdk/synckairos.js", "text/javascript; charset=utf-8", "public, max-age=300", "SyncKairosError", 200},
		{"/demo/", "text/html; charset=utf-8", "no-cache", `src="demo.js"`, 200},
		{"/demo/index.html", "text/html; charset=utf-8", "no-cache", `href="demo.css"`, 200},
		{"/demo/demo.js", "text/javascript; charset=utf-8", "no-cache", `from '/sdk/synckairos.js'`, 200},
		{"/demo/demo.css", "text/css; charset=utf-8", "no-cache", "#clocks", 200},
		{"/demo/nothing.js", "application/json", "", "NOT_FOUND", 404},
	}
	for _, c := range cases {
		r := doReq(t, "GET", s.base+c.path, "")
		if r.status != c.status || r.header.Get("Content-Type") != c.ctype || r.header.Get("Cache-Control") != c.cache ||
			!bytes.Contains(r.body, []byte(c.contains)) {
			t.Errorf("GET %s: %d %q cache %q, body has %q: %v", c.path, r.status, r.header.Get("Content-Type"),
				r.header.Get("Cache-Control"), c.contains, bytes.Contains(r.body, []byte(c.contains)))
			continue
		}
		if c.status != 200 {
			continue
		}
		etag := r.header.Get("ETag")
		if nm := doReq(t, "GET", s.base+c.path, "", "If-None-Match", etag); etag == "" || nm.status != 304 || len(nm.body) != 0 {
			t.Errorf("GET %s If-None-Match %q: %d, %d bytes", c.path, etag, nm.status, len(nm.body))
		}
	}
	// The bundle served is the embedded one, byte for byte, also gzipped.
	if r := doReq(t, "GET", s.base+"/sdk/synckairos.js", ""); !bytes.Equal(r.body, webassets.Bundle()) {
		t.Errorf("served bundle differs from the embedded one")
	}
	req, _ := http.NewRequest("GET", s.base+"/sdk/synckairos.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	zr, err := gzip.NewReader(res.Body)
	if err != nil || res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip: %v %q", err, res.Header.Get("Content-Encoding"))
	}
	if b, _ := io.ReadAll(zr); !bytes.Equal(b, webassets.Bundle()) {
		t.Errorf("gzipped bundle differs")
	}
	// /demo without the slash goes to /demo/.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res2, err := noRedirect.Get(s.base + "/demo")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode/100 != 3 || !strings.HasSuffix(res2.Header.Get("Location"), "/demo/") {
		t.Errorf("/demo: %d Location %q", res2.StatusCode, res2.Header.Get("Location"))
	}
}
