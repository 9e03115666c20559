// Package docs is the API reference: API.md for people and openapi.yaml for
// tools. As Go it has one job: serve openapi.yaml, embedded in the binary,
// as JSON at GET /openapi.json, so the document a client fetches is the
// one this build was tested against.
package docs

import (
	_ "embed"
	"errors"
	"strconv"

	json "github.com/goccy/go-json"
	"github.com/valyala/fasthttp"
	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var openapiYAML []byte

// openapiJSON is converted once, at start; the test proves the embedded
// file converts, so a failure here is a build that was never tested.
var openapiJSON = mustJSON(openapiYAML)

// OpenAPIYAML returns the document as written.
func OpenAPIYAML() []byte { return openapiYAML }

var contentJSON = []byte("application/json")

// OpenAPI serves GET /openapi.json.
func OpenAPI(ctx *fasthttp.RequestCtx) {
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(openapiJSON)
}

func mustJSON(y []byte) []byte {
	b, err := ToJSON(y)
	if err != nil {
		panic("docs/openapi.yaml: " + err.Error())
	}
	return b
}

// ToJSON converts a YAML document to JSON, keeping the order of its keys
// (a map would sort them, moving "components" above "info" and "paths").
func ToJSON(y []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(y, &root); err != nil {
		return nil, err
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return nil, errors.New("want one YAML document")
	}
	return appendJSON(nil, root.Content[0], 0)
}

// maxDepth bounds the nesting (and alias chains) appendJSON follows.
const maxDepth = 64

func appendJSON(b []byte, n *yaml.Node, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deep, or an alias cycle")
	}
	var err error
	switch n.Kind {
	case yaml.AliasNode:
		return appendJSON(b, n.Alias, depth+1)
	case yaml.MappingNode:
		b = append(b, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return nil, errors.New("line " + strconv.Itoa(k.Line) + ": only plain scalar keys convert to JSON")
			}
			if i > 0 {
				b = append(b, ',')
			}
			kb, _ := json.Marshal(k.Value)
			b = append(append(b, kb...), ':')
			if b, err = appendJSON(b, n.Content[i+1], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case yaml.SequenceNode:
		b = append(b, '[')
		for i, c := range n.Content {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, c, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, errors.New("line " + strconv.Itoa(n.Line) + ": " + err.Error())
		}
		return append(b, vb...), nil
	}
	return nil, errors.New("line " + strconv.Itoa(n.Line) + ": unsupported YAML node")
}
