package txpool

import (
	"crypto/sha256"
	"encoding/hex"
)

// statementName is the engine's txcore.Namer: a client statement's
// server-side name, derived from the client's search_path, the text and
// the parameter types, so clients preparing the same query share one
// server statement, and names never collide between different queries
// (96 bits of SHA-256: a client cannot make its query take another's
// name).
func statementName(searchPath string, query, params []byte) string {
	h := sha256.New()
	h.Write([]byte(searchPath))
	h.Write([]byte{0})
	h.Write(query)
	h.Write([]byte{0})
	h.Write(params)
	var sum [sha256.Size]byte
	return "sluice_" + hex.EncodeToString(h.Sum(sum[:0])[:12])
}
