package keyring

import "testing"

func BenchmarkOpen(b *testing.B) {
	spec, _ := NewKeySpec("k1")
	k, _ := Parse(spec)
	sealed, _ := k.Seal([]byte("1000.0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef"), []byte("zoho\x00org-1\x00access_token"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(sealed, []byte("zoho\x00org-1\x00access_token")); err != nil {
			b.Fatal(err)
		}
	}
}
