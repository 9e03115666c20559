package docs

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pb33f/jsonschema/v6"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIValid: docs/openapi.yaml is a valid OpenAPI 3.1 document
// (libopenapi-validator checks it against the 3.1 schema; building the
// model resolves every $ref), from the YAML and from the JSON served.
func TestOpenAPIValid(t *testing.T) {
	for name, src := range map[string][]byte{"yaml": openapiYAML, "json": openapiJSON} {
		t.Run(name, func(t *testing.T) {
			doc, err := libopenapi.NewDocument(src)
			if err != nil {
				t.Fatal(err)
			}
			if v := doc.GetVersion(); !strings.HasPrefix(v, "3.1.") {
				t.Fatalf("version %q, want 3.1.x", v)
			}
			if _, err := doc.BuildV3Model(); err != nil {
				t.Fatalf("building the model: %v", err)
			}
			v, errs := validator.NewValidator(doc)
			if len(errs) > 0 {
				t.Fatalf("validator: %v", errs)
			}
			if ok, verrs := v.ValidateDocument(); !ok {
				for _, e := range verrs {
					t.Errorf("%s: %s", e.Message, e.Reason)
					for _, f := range e.SchemaValidationErrors {
						t.Errorf("  at %s: %s", f.InstancePath, f.Reason)
					}
				}
			}
		})
	}
}

// TestOpenAPIJSON: the JSON served is the YAML, key for key (decoded here
// the plain way, into maps, against ToJSON's ordered walk).
func TestOpenAPIJSON(t *testing.T) {
	var fromYAML any
	if err := yaml.Unmarshal(openapiYAML, &fromYAML); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(fromYAML)
	var w, got any
	_ = json.Unmarshal(want, &w)
	if err := json.Unmarshal(openapiJSON, &got); err != nil {
		t.Fatalf("served JSON: %v", err)
	}
	if !reflect.DeepEqual(w, got) {
		t.Fatal("the JSON differs from the YAML")
	}
	// order is kept: the document opens as written
	if !strings.HasPrefix(string(openapiJSON), `{"openapi":"3.1.0","info":{`) {
		t.Errorf("JSON opens with %.40s", openapiJSON)
	}
}

func TestToJSON(t *testing.T) {
	for _, c := range []struct{ name, in, want, err string }{
		{"scalars", "a: 1\nb: 1.5\nc: true\nd: null\ne: '3'\nf: 2.0.0\ng: off\n",
			`{"a":1,"b":1.5,"c":true,"d":null,"e":"3","f":"2.0.0","g":"off"}`, ""},
		{"order kept", "z: 1\na: [x, {k: v}]\n", `{"z":1,"a":["x",{"k":"v"}]}`, ""},
		{"alias", "a: &x {k: 1}\nb: *x\n", `{"a":{"k":1},"b":{"k":1}}`, ""},
		{"status keys", "'200': a\n101: b\n", `{"200":"a","101":"b"}`, ""},
		{"merge key refused", "a: &x {k: 1}\nb:\n  <<: *x\n", "", "scalar keys"},
		{"not YAML", "a: [", "", "did not find"},
		{"two documents", "a: 1\n---\nb: 2\n", `{"a":1}`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ToJSON([]byte(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("got %s %v, want %s", got, err, c.want)
			}
		})
	}
}

// TestOpenAPISchemas: every schema of the document (under components, and
// those of parameters, headers and bodies) is a valid JSON Schema 2020-12,
// the dialect of OpenAPI 3.1: the OpenAPI meta-schema does not look inside
// schemas, so a "type: integr" would pass it. The schemas go to the
// compiler as $defs of one schema, whose meta-validation checks each.
func TestOpenAPISchemas(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	comp, _ := doc["components"].(map[string]any)
	defs, _ := comp["schemas"].(map[string]any)
	if len(defs) == 0 {
		t.Fatal("no components.schemas")
	}
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if s, ok := c.(map[string]any); ok && k == "schema" {
					defs["inline-"+strconv.Itoa(n)] = s
					n++
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc["paths"])
	walk(comp["parameters"])
	walk(comp["headers"])
	walk(comp["responses"])
	walk(comp["requestBodies"])
	if n < 20 {
		t.Fatalf("found %d inline schemas", n)
	}
	b, _ := json.Marshal(defs)
	root := `{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":` +
		strings.ReplaceAll(string(b), `"#/components/schemas/`, `"#/$defs/`) + `}`
	parsed, err := jsonschema.UnmarshalJSON(strings.NewReader(root))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("mem:///openapi.json", parsed); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compile("mem:///openapi.json"); err != nil {
		t.Fatal(err) // the meta-validation of every schema at once
	}
	for name := range defs { // each resolves its $refs
		if _, err := c.Compile("mem:///openapi.json#/$defs/" + name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestAPIMarkdown: API.md names every path, error code and WebSocket
// message type of the document, and links nothing outside the repository.
func TestAPIMarkdown(t *testing.T) {
	md, err := os.ReadFile("API.md")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Enum       []string `json:"enum"`
				Properties map[string]struct {
					Const any      `json:"const"`
					Enum  []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for p := range doc.Paths {
		names = append(names, p)
	}
	names = append(names, doc.Components.Schemas["ErrorCode"].Enum...)
	names = append(names, doc.Components.Schemas["WsError"].Properties["code"].Enum...)
	for name, s := range doc.Components.Schemas {
		if c, ok := s.Properties["type"].Const.(string); ok && strings.HasPrefix(name, "Ws") {
			names = append(names, c)
		}
	}
	if len(names) < 40 {
		t.Fatalf("only %d names", len(names))
	}
	for _, n := range names {
		if !strings.Contains(string(md), n) {
			t.Errorf("API.md does not mention %s", n)
		}
	}
	if m := regexp.MustCompile(`\]\((https?:|//)[^)]*\)`).FindAll(md, -1); len(m) > 0 {
		t.Errorf("API.md links outside the repository: %s", m)
	}
}
