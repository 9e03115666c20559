package handlers

import (
	stdjson "encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScanJSON(t *testing.T) {
	twenty := make([]string, 20)
	for i := range twenty {
		twenty[i] = `"k` + string(rune('a'+i)) + `":1`
	}
	for _, tc := range []struct {
		body  string
		field string // "" valid; "body" malformed; else the duplicate's path
	}{
		{`{}`, ""},
		{` {"a":[1,-2.5e+3,0,true,false,null,"s\"\\\/\b\f\n\r\t\u00e9"],"b":{"c":{}}} `, ""},
		{`[{"a":1},{"a":1}]`, ""},
		{`{"a":{"a":1},"b":{"a":1}}`, ""},
		{`123`, ""},
		{`oops`, "body"},
		{`{"a":1,}`, "body"},
		{`[1,]`, "body"},
		{`{"a" 1}`, "body"},
		{`{"a":01}`, "body"},
		{`{"a":-}`, "body"},
		{`{"a":1.}`, "body"},
		{`{"a":1e}`, "body"},
		{`{"a":"\x"}`, "body"},
		{`{"a":"\u12"}`, "body"},
		{"{\"a\":\"\x01\"}", "body"},
		{`{"a":"`, "body"},
		{`{"a":1}}`, "body"},
		{`{a:1}`, "body"},
		{`nul`, "body"},
		{strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2), "body"},
		{strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth), ""},
		{`{"a":1,"a":2}`, "a"},
		{`{"a":1,"\u0061":2}`, "a"},
		{`{"m":{"x":1,"y":[],"x":2}}`, "m.x"},
		{`{"p":[{"k":1},{"k":1,"j":{},"k":2}]}`, "p.1.k"},
		{`[[{"z":1,"z":1}]]`, "0.0.z"},
		{`{` + strings.Join(twenty, ",") + `}`, ""},
		{`{` + strings.Join(twenty, ",") + `,"kc":2}`, "kc"},
	} {
		_, err := scanJSON([]byte(tc.body))
		got := fieldsOf(t, err)
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%.60q: want valid, got %v", tc.body, got)
		case tc.field != "" && len(got) != 1:
			t.Errorf("%.60q: want %s refused, got %v", tc.body, tc.field, got)
		case tc.field == "body" && !strings.HasPrefix(got["body"], "Malformed JSON"):
			t.Errorf("%.60q: want Malformed JSON, got %v", tc.body, got)
		case tc.field != "" && tc.field != "body" && !strings.HasPrefix(got[tc.field], "Duplicate key"):
			t.Errorf("%.60q: want duplicate %s, got %v", tc.body, tc.field, got)
		}
	}
}

// FuzzCheckJSON: scanJSON accepts exactly what encoding/json accepts,
// less the bodies that repeat a key.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2,{"b":null}]}`, `{"a":1,"a":2}`, `oops`, `[1,]`, `"\u00e9"`, `-0.5E-7`, `{"a":"\"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := scanJSON(b)
		valid := stdjson.Valid(b)
		var ve *ValidationError
		switch {
		case err == nil && !valid:
			t.Fatalf("%q: accepted, encoding/json refuses it", b)
		case err != nil && valid:
			if !errors.As(err, &ve) || ve.Fields[0].Field == "body" && strings.Count(string(b), "[")+strings.Count(string(b), "{") <= maxDepth {
				t.Fatalf("%q: refused as %v, encoding/json accepts it", b, err)
			}
		}
	})
}

func BenchmarkScanJSONSwitch(b *testing.B) {
	body := []byte(`{"expected_version":12,"current_participant_id":"` + p1 + `","next_participant_id":"` + p2 + `"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := scanJSON(body); err != nil {
			b.Fatal("refused")
		}
	}
}
