package notify

import (
	"maps"
	"slices"
	"strings"
)

// Registry records which subscribers listen to which channel. It is a
// value with no I/O and no lock (the Hub guards it); S identifies a
// subscriber.
type Registry[S comparable] struct {
	channels map[string]map[S]struct{}
}

// Listen adds s to ch's listeners and reports whether the union of
// channels gained ch (the listener connection must LISTEN to it).
func (r *Registry[S]) Listen(s S, ch string) (gained bool) {
	if r.channels == nil {
		r.channels = map[string]map[S]struct{}{}
	}
	set := r.channels[ch]
	if set == nil {
		set = map[S]struct{}{}
		r.channels[ch] = set
		gained = true
	}
	set[s] = struct{}{}
	return gained
}

// Unlisten removes s from ch's listeners and reports whether the union
// lost ch (nobody listens to it any more: the listener connection must
// UNLISTEN it).
func (r *Registry[S]) Unlisten(s S, ch string) (lost bool) {
	set := r.channels[ch]
	if set == nil {
		return false
	}
	delete(set, s)
	if len(set) > 0 {
		return false
	}
	delete(r.channels, ch)
	return true
}

// Each calls fn for every listener of ch.
func (r *Registry[S]) Each(ch string, fn func(S)) {
	for s := range r.channels[ch] {
		fn(s)
	}
}

// Has reports whether anyone listens to ch.
func (r *Registry[S]) Has(ch string) bool { return r.channels[ch] != nil }

// Len is the number of channels in the union.
func (r *Registry[S]) Len() int { return len(r.channels) }

// Diff is what the listener connection must send for its channels
// (have) to become the registry's union: channels to LISTEN and to
// UNLISTEN, each sorted.
func (r *Registry[S]) Diff(have map[string]bool) (listen, unlisten []string) {
	for ch := range r.channels {
		if !have[ch] {
			listen = append(listen, ch)
		}
	}
	for ch := range have {
		if r.channels[ch] == nil {
			unlisten = append(unlisten, ch)
		}
	}
	slices.Sort(listen)
	slices.Sort(unlisten)
	return listen, unlisten
}

// Channels is the union, sorted.
func (r *Registry[S]) Channels() []string { return slices.Sorted(maps.Keys(r.channels)) }

// Command is the one simple Query that makes a connection LISTEN to
// listen and UNLISTEN unlisten ("" when both are empty). Channel names
// are quoted identifiers, so any name a client could LISTEN to is
// spelled exactly.
func Command(listen, unlisten []string) string {
	var b strings.Builder
	add := func(verb, ch string) {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(verb)
		b.WriteString(` "`)
		b.WriteString(strings.ReplaceAll(ch, `"`, `""`))
		b.WriteByte('"')
	}
	for _, ch := range unlisten {
		add("UNLISTEN", ch)
	}
	for _, ch := range listen {
		add("LISTEN", ch)
	}
	return b.String()
}
