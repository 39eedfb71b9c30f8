package dashboard

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// seriesIndex finds a snapshot's series without scanning them all: by
// database (the page's grouping) and by exact labels (to pair a series
// with itself in the base snapshot). Built once per snapshot.
type seriesIndex struct {
	byDatabase map[string]map[string][]int // name → database → positions
	byLabels   map[string]map[string]int   // name → labelKey → position
}

// indexed returns s with its index built.
func indexed(s Snapshot) Snapshot {
	if s.idx != nil {
		return s
	}
	idx := &seriesIndex{byDatabase: map[string]map[string][]int{}, byLabels: map[string]map[string]int{}}
	for name, series := range s.Series {
		dbs := map[string][]int{}
		keys := make(map[string]int, len(series))
		for i, x := range series {
			db := x.Labels["database"]
			dbs[db] = append(dbs[db], i)
			keys[labelKey(x.Labels)] = i
		}
		idx.byDatabase[name], idx.byLabels[name] = dbs, keys
	}
	s.idx = idx
	return s
}

// labelKey is labels as one string, the same for equal label sets.
func labelKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString(k)
		b.WriteByte(0xff)
		b.WriteString(labels[k])
		b.WriteByte(0xfe)
	}
	return b.String()
}

// matching returns the series of name whose labels include in.
func matching(s Snapshot, name string, in map[string]string) []Series {
	var out []Series
	if db, ok := in["database"]; ok && s.idx != nil {
		for _, i := range s.idx.byDatabase[name][db] {
			if x := s.Series[name][i]; includes(x.Labels, in) {
				out = append(out, x)
			}
		}
		return out
	}
	for _, series := range s.Series[name] {
		if includes(series.Labels, in) {
			out = append(out, series)
		}
	}
	return out
}

// find returns the series of name with exactly labels, or nil.
func find(s Snapshot, name string, labels map[string]string) *Series {
	if s.idx != nil {
		if i, ok := s.idx.byLabels[name][labelKey(labels)]; ok {
			return &s.Series[name][i]
		}
		return nil
	}
	for i, series := range s.Series[name] {
		if maps.Equal(series.Labels, labels) {
			return &s.Series[name][i]
		}
	}
	return nil
}

// sum adds the values of name's series matching in; nil when none.
func sum(s Snapshot, name string, in map[string]string) *float64 {
	series := matching(s, name, in)
	if len(series) == 0 {
		return nil
	}
	total := 0.0
	for _, x := range series {
		total += x.Value
	}
	return &total
}

// labelValues lists, sorted, the values of label among the series of
// names matching in.
func labelValues(s Snapshot, label string, in map[string]string, names ...string) []string {
	seen := map[string]bool{}
	for _, name := range names {
		for _, series := range matching(s, name, in) {
			if v, ok := series.Labels[label]; ok {
				seen[v] = true
			}
		}
	}
	return slices.SortedFunc(maps.Keys(seen), strings.Compare)
}

// databases lists every database any watched series names.
func databases(s Snapshot) []string {
	seen := map[string]bool{}
	for _, series := range s.Series {
		for _, x := range series {
			if db, ok := x.Labels["database"]; ok {
				seen[db] = true
			}
		}
	}
	return slices.SortedFunc(maps.Keys(seen), cmp.Compare[string])
}

func includes(labels, in map[string]string) bool {
	for k, v := range in {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func with(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	out[k] = v
	return out
}
