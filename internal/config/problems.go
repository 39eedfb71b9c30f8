package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	// Path is the dotted key path, e.g. "databases.appdb.pool.max_size" or
	// "users[1].password"; "" for problems with the file as a whole.
	Path string
	// Message says what is wrong, in words meant for the person editing the
	// file. It ends with "(line N)" when the line is known.
	Message string
}

// String formats as "path: message", or just the message when Path is "".
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Problems is every problem found in one configuration file, in file order
// for decoding problems followed by validation problems.
type Problems []Problem

// Error lists the problems, one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// collector gathers problems while decoding and validating. It remembers the
// line of every node it decoded so that validation problems can point at the
// line too, and which paths already failed to decode so that validation does
// not pile a second, misleading problem on top of the first.
type collector struct {
	probs Problems
	lines map[string]int  // path -> line of its value node
	bad   map[string]bool // paths whose value failed to decode
	// spellings holds, by path, the mode values that are no spelling of
	// their mode (decoded as unknownMode), as the file wrote them.
	spellings map[string]string
}

func newCollector() *collector {
	return &collector{lines: map[string]int{}, bad: map[string]bool{}, spellings: map[string]string{}}
}

// spelled is the mode at path as the file spelled it: its name, or the
// unknown spelling the decoder kept. Problems quote it, so a typo reads
// back as typed.
func (c *collector) spelled(path string, m fmt.Stringer) string {
	if s, ok := c.spellings[path]; ok {
		return s
	}
	return m.String()
}

// decodeErr records a problem found while decoding the value at path.
func (c *collector) decodeErr(path string, line int, format string, args ...any) {
	c.bad[path] = true
	c.add(path, line, fmt.Sprintf(format, args...))
}

// invalid records a validation problem; the line is looked up from decoding.
// Paths that already failed to decode are skipped.
func (c *collector) invalid(path string, format string, args ...any) {
	if c.bad[path] {
		return
	}
	c.add(path, c.lineOf(path), fmt.Sprintf(format, args...))
}

// lineOf is the line of path's value or, for a key that is absent (say a
// missing required key), of the nearest enclosing mapping or list.
func (c *collector) lineOf(path string) int {
	if l, ok := c.lines[path]; ok {
		return l
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] == '.' || path[i] == '[' {
			if l, ok := c.lines[path[:i]]; ok {
				return l
			}
		}
	}
	return 0
}

func (c *collector) add(path string, line int, msg string) {
	if line > 0 {
		msg += fmt.Sprintf(" (line %d)", line)
	}
	c.probs = append(c.probs, Problem{Path: path, Message: msg})
}

// join builds child paths: join("databases", "appdb") = "databases.appdb".
// Map keys that contain anything but letters, digits, '_' and '-' are quoted
// so that the path stays unambiguous: databases["my.db"].
func join(parent, key string) string {
	if !plainKey(key) {
		return fmt.Sprintf("%s[%q]", parent, key)
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func index(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

func plainKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		ok := r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// oneOf formats an enum list: "debug, info, warn or error".
func oneOf(vals []string) string {
	if len(vals) == 1 {
		return vals[0]
	}
	return strings.Join(vals[:len(vals)-1], ", ") + " or " + vals[len(vals)-1]
}
