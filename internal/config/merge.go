package config

import (
	"go.yaml.in/yaml/v3"
)

// pair is one key/value of a mapping after merge keys are expanded.
type pair struct {
	key  string
	line int // line of the key
	val  *yaml.Node
}

const maxMergeDepth = 16

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

// pairs lists the keys of mapping n, expanding merge keys ("<<: *defaults")
// the way YAML and yaml.v3 do: explicit keys win over merged ones, and in
// "<<: [*a, *b]" a key from *a wins over the same key from *b. Duplicate
// explicit keys and keys that are not scalars are reported. stack holds the
// mappings being expanded, to catch a merge that refers to itself.
func (d *decoder) pairs(n *yaml.Node, path string, stack []*yaml.Node) []pair {
	var merged, explicit []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.spend() {
			return nil
		}
		k, v := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			merged = append(merged, d.merge(v, path, append(stack, n))...)
			continue
		}
		kr := resolve(k)
		if kr == nil || kr.Kind != yaml.ScalarNode || isNull(kr) {
			d.c.decodeErr(path, k.Line, "keys must be plain names, got %s", describe(kr))
			continue
		}
		if first, dup := seen[kr.Value]; dup {
			d.c.decodeErr(join(path, kr.Value), k.Line, "duplicate key (first defined on line %d)", first)
			continue
		}
		seen[kr.Value] = k.Line
		explicit = append(explicit, pair{key: kr.Value, line: k.Line, val: v})
	}
	if len(merged) == 0 {
		return explicit
	}
	var out []pair
	for _, p := range merged {
		if _, ok := seen[p.key]; !ok {
			seen[p.key] = p.line
			out = append(out, p)
		}
	}
	return append(out, explicit...)
}

// merge expands the value of a "<<" key: a mapping or a list of mappings.
func (d *decoder) merge(v *yaml.Node, path string, stack []*yaml.Node) []pair {
	line := v.Line
	v = resolve(v)
	if len(stack) > maxMergeDepth {
		d.c.decodeErr(path, line, "merge keys (<<) nested too deeply")
		return nil
	}
	var maps []*yaml.Node
	switch {
	case v != nil && v.Kind == yaml.MappingNode:
		maps = []*yaml.Node{v}
	case v != nil && v.Kind == yaml.SequenceNode:
		for _, el := range v.Content {
			maps = append(maps, resolve(el))
		}
	}
	if len(maps) == 0 && (v == nil || v.Kind != yaml.SequenceNode) {
		d.c.decodeErr(path, line, "a merge key (<<) must refer to a mapping or a list of mappings, got %s", describe(v))
		return nil
	}
	var out []pair
	seen := map[string]bool{}
	for _, m := range maps {
		if m == nil || m.Kind != yaml.MappingNode {
			d.c.decodeErr(path, line, "a merge key (<<) must refer to a mapping or a list of mappings, got %s", describe(m))
			continue
		}
		if onStack(stack, m) {
			d.c.decodeErr(path, line, "a merge key (<<) refers to the mapping that contains it")
			continue
		}
		for _, p := range d.pairs(m, path, stack) {
			if !seen[p.key] { // earlier mappings in the list win
				seen[p.key] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func onStack(stack []*yaml.Node, n *yaml.Node) bool {
	for _, s := range stack {
		if s == n {
			return true
		}
	}
	return false
}

// editDistance is the Levenshtein distance, for "did you mean" suggestions.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
