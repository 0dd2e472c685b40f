package config

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Marshal writes cfg as YAML that Load reads back to an equal Config. Unset fields are left
// out, so a config saved from the UI stays as short as one written by hand.
func Marshal(cfg *Config) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(cfg); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	pruneEmpty(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return buf.Bytes(), nil
}

// pruneEmpty drops unset block-page addresses. omitempty cannot: netip.Addr's fields are
// all unexported, so yaml sees every Addr as non-empty and writes an unset one as "".
// Other empty strings are kept; in a list's categories map "" means "ignore".
func pruneEmpty(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if (k.Value == "block_page_ipv4" || k.Value == "block_page_ipv6") && v.Kind == yaml.ScalarNode && v.Value == "" {
				continue
			}
			kept = append(kept, k, v)
		}
		n.Content = kept
	}
	for _, c := range n.Content {
		pruneEmpty(c)
	}
}
