package token

import (
	"testing"
	"time"
)

// FuzzVerify checks that Verify never panics and accepts nothing it should
// not: any token it accepts for app/appdb must carry a valid signature, so
// a mutated input can only pass if it is byte-for-byte the issued token.
func FuzzVerify(f *testing.F) {
	good, err := Issue(testPriv, "app", "appdb", 15*time.Minute, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("sluice1..")
	f.Fuzz(func(t *testing.T, tok string) {
		err := Verify(testPub, tok, "app", "appdb", t0)
		if err == nil && tok != good {
			// Ed25519 signatures are not malleable and the encoding is
			// strict, so a second accepted form would be a bug.
			t.Fatalf("accepted a token other than the issued one: %q", tok)
		}
	})
}
