// Package stmtcache is the per-connection cache of prepared statement
// names that transaction pooling keeps. It has no I/O, so that both the
// server connection (internal/backend) and the pure transaction-mode
// core (internal/txpool/txcore) can use it.
package stmtcache

import "container/list"

// Cache remembers which protocol-level prepared statements
// sluice has created on one server connection in transaction pooling, in
// least-recently-used order, so that a statement is prepared once per
// connection and not once per transaction. It is owned by whoever holds
// the connection (see Conn) and is not safe for concurrent use.
type Cache struct {
	max   int
	order *list.List // front = most recently used; values are names
	byKey map[string]*list.Element
}

// New returns an empty cache holding at most max names.
func New(max int) *Cache {
	if max < 1 {
		max = 1
	}
	return &Cache{max: max, order: list.New(), byKey: make(map[string]*list.Element)}
}

// Has reports whether name is prepared, and marks it recently used.
func (c *Cache) Has(name string) bool {
	e, ok := c.byKey[name]
	if ok {
		c.order.MoveToFront(e)
	}
	return ok
}

// Add records name as prepared. When the cache is full it drops the
// least recently used name and returns it: the caller must close that
// statement on the server.
func (c *Cache) Add(name string) (evicted string) {
	if e, ok := c.byKey[name]; ok {
		c.order.MoveToFront(e)
		return ""
	}
	if c.order.Len() >= c.max {
		last := c.order.Back()
		evicted = last.Value.(string)
		c.order.Remove(last)
		delete(c.byKey, evicted)
	}
	c.byKey[name] = c.order.PushFront(name)
	return evicted
}

// Remove forgets name (it failed to prepare, or was closed).
func (c *Cache) Remove(name string) {
	if e, ok := c.byKey[name]; ok {
		c.order.Remove(e)
		delete(c.byKey, name)
	}
}

// Clear forgets every name (the server's statements may be gone, e.g.
// after DISCARD ALL).
func (c *Cache) Clear() {
	c.order.Init()
	clear(c.byKey)
}

// Len is the number of names remembered.
func (c *Cache) Len() int { return c.order.Len() }
