package webhook

import "testing"

func TestMaskChannelToken(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"channel_id":"1000000068001","token":"s3cret","module":"Deals"}`, `{"channel_id":"1000000068001","token":"[REDACTED]","module":"Deals"}`},
		{"{ \"token\" :\t\"a\\\"b\" , \"ids\":[1,2]}", "{ \"token\" :\t\"[REDACTED]\" , \"ids\":[1,2]}"},
		{`{"token":"x","token":"y"}`, `{"token":"[REDACTED]","token":"[REDACTED]"}`},
		{`{"nested":{"token":"keep"},"module":"Leads"}`, `{"nested":{"token":"keep"},"module":"Leads"}`},
		{`{"token":12345}`, `{"token":"[REDACTED]"}`},
		{`not json`, `not json`},
		{`["token","x"]`, `["token","x"]`},
		{`{"token":"x"`, `{"token":"[REDACTED]"`},
		{`{"token":"x", garbage}`, `{"token":"[REDACTED]", garbage}`},
		{``, ``},
	} {
		if got := string(maskChannelToken([]byte(c.in))); got != c.want {
			t.Errorf("mask(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
