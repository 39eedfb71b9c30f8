package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decoder copies a yaml.Node tree onto a Config that already holds the
// defaults, following the struct tree with reflection. It never stops at the
// first error: every problem goes to the collector and decoding carries on
// with the next key. The semantics match yaml.v3 with KnownFields(true)
// (unknown keys are errors, merge keys "<<" and aliases work), except that it
// is stricter about scalar types (1.5 is not an integer, "yes" is not a bool).
//
// An explicit null (`key:` or `key: ~`) keeps the default, like an absent key.
type decoder struct {
	c *collector
	// budget bounds the work done on one document, so that alias and merge
	// fan-out ("billion laughs") cannot make Parse take forever.
	budget int
}

const (
	workBudget    = 100_000
	maxAliasChain = 64
)

var (
	durationType = reflect.TypeFor[Duration]()
	databasesTyp = reflect.TypeFor[map[string]*Database]()
)

// spend charges one unit of work; false once the budget is gone (reported once).
func (d *decoder) spend() bool {
	d.budget--
	if d.budget == 0 {
		d.c.add("", 0, "the document is too complex (too many aliases or merge keys)")
	}
	return d.budget > 0
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxAliasChain; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") ||
		(n.Kind == yaml.DocumentNode && len(n.Content) == 0)
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("%q", v)
	default:
		return "an unresolvable alias"
	}
}

// value decodes n into v, which already holds the default.
func (d *decoder) value(n *yaml.Node, path string, v reflect.Value) {
	if !d.spend() {
		return
	}
	n = resolve(n)
	if n != nil {
		d.c.lines[path] = n.Line
	}
	if isNull(n) {
		return
	}
	if v.Type() == durationType {
		if n.Kind != yaml.ScalarNode {
			d.c.decodeErr(path, n.Line, `expected a duration such as "30s", got %s`, describe(n))
			return
		}
		dur, err := parseDuration(n)
		if err != nil {
			d.c.decodeErr(path, n.Line, "%s", err)
			return
		}
		v.Set(reflect.ValueOf(dur))
		return
	}
	if v.Type() == databasesTyp {
		d.databases(n, path, v)
		return
	}
	if m, ok := v.Addr().Interface().(spelledMode); ok {
		d.mode(n, path, m)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(n, path, v)
	case reflect.Slice:
		d.list(n, path, v)
	case reflect.String:
		d.scalar(n, path, v, "a string", "")
	case reflect.Int:
		d.scalar(n, path, v, "an integer", "!!int")
	case reflect.Float64:
		d.scalar(n, path, v, "a number", "!!int", "!!float")
	case reflect.Bool:
		d.scalar(n, path, v, "true or false", "!!bool")
	default:
		panic("config: unsupported field type " + v.Type().String()) // programming error
	}
}

// mode decodes a typed mode (modes.go) from its spelling. The spelling is
// read as any string field is, so the same inputs are refused with the
// same words; a string that is no spelling of the mode is kept by the
// collector and reported by validation, exactly as when the field was a
// string compared with the allowed list.
func (d *decoder) mode(n *yaml.Node, path string, m spelledMode) {
	var s string
	if !d.scalar(n, path, reflect.ValueOf(&s).Elem(), "a string", "") {
		return
	}
	if !m.setSpelling(s) {
		d.c.spellings[path] = s
	}
}

// scalar decodes a scalar with yaml.v3, after checking its resolved tag is
// one of tags ("" = any scalar). It reports whether it did.
func (d *decoder) scalar(n *yaml.Node, path string, v reflect.Value, want string, tags ...string) bool {
	ok := n.Kind == yaml.ScalarNode
	if ok && tags[0] != "" {
		ok = false
		for _, t := range tags {
			ok = ok || n.ShortTag() == t
		}
	}
	if !ok {
		d.c.decodeErr(path, n.Line, "expected %s, got %s", want, describe(n))
		return false
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		d.c.decodeErr(path, n.Line, "%s is not a valid value here (out of range?)", describe(n))
		return false
	}
	v.Set(tmp.Elem())
	return true
}

func parseDuration(n *yaml.Node) (Duration, error) {
	dur, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf(`invalid duration %q: use Go syntax such as "250ms", "30s" or "2m"`, n.Value)
	}
	return Duration(dur), nil
}

func (d *decoder) structure(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.c.decodeErr(path, n.Line, "expected a mapping, got %s", describe(n))
		return
	}
	fields := map[string]int{}
	var names []string
	for i := 0; i < v.NumField(); i++ {
		tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			fields[tag] = i
			names = append(names, tag)
		}
	}
	for _, p := range d.pairs(n, path, nil) {
		i, ok := fields[p.key]
		if !ok {
			d.c.decodeErr(join(path, p.key), p.line, "%s", unknownKey(p.key, names))
			continue
		}
		d.value(p.val, join(path, p.key), v.Field(i))
	}
}

func unknownKey(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key, did you mean %q?", best)
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return "unknown key (known keys here: " + strings.Join(sorted, ", ") + ")"
}

func (d *decoder) list(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.c.decodeErr(path, n.Line, "expected a list, got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, el := range n.Content {
		d.value(el, index(path, i), out.Index(i))
	}
	v.Set(out)
}

func (d *decoder) databases(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.c.decodeErr(path, n.Line, "expected a mapping of database names to settings, got %s", describe(n))
		return
	}
	m := map[string]*Database{}
	for _, p := range d.pairs(n, path, nil) {
		db := defaultDatabase(p.key)
		d.value(p.val, join(path, p.key), reflect.ValueOf(db).Elem())
		m[p.key] = db
	}
	v.Set(reflect.ValueOf(m))
}
