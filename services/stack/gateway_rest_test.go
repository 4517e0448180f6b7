package stack_test

import (
	"net/http"
	"regexp"
	"testing"
)

// Through the real services, 401 and 403 answers carry RFC 6750 challenges, and REST input the routes do
// not read is refused with 400 rather than ignored.
func TestGatewayChallengesAndStrictInput(t *testing.T) {
	c, keys := newCreds(t)
	r := start(t, map[string]string{"AUTH_API_KEYS": keys, "AUDIT_CLIENT_API_KEY": c.admin.Key, "TEST_ADMIN_KEY": c.admin.Key})
	challenge := regexp.MustCompile(`^Bearer realm="sergas", error="(invalid_token|insufficient_scope)", error_description="[\x20\x21\x23-\x5B\x5D-\x7E]*"$`)
	cases := []struct {
		name, auth string
		code       int
		want       string // the error attribute; "" for none
	}{
		{"no credential", "", 401, ""},
		{"malformed", "Bearer nonsense", 401, "invalid_token"},
		{"another scheme", "Basic " + c.admin.Key, 401, ""},
		{"expired", "Bearer " + c.expired.Key, 401, "invalid_token"},
		{"revoked", "Bearer " + c.revoked.Key, 401, "invalid_token"},
		{"wrong scope", "Bearer " + c.byScope["audit:read"].Key, 403, "insufficient_scope"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", r.base+"/v1/connections", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("WWW-Authenticate")
		switch {
		case resp.StatusCode != tc.code:
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.code)
		case tc.want == "" && got != `Bearer realm="sergas"`:
			t.Errorf("%s: WWW-Authenticate %q", tc.name, got)
		case tc.want != "" && (!challenge.MatchString(got) || challenge.FindStringSubmatch(got)[1] != tc.want):
			t.Errorf("%s: WWW-Authenticate %q, want error=%q", tc.name, got, tc.want)
		}
	}

	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"GET", "/v1/connections?pageSize=1", "", 200},
		{"GET", "/v1/connections?pageSize=1&provder=zoho", "", 400},
		{"GET", "/v1/connections/zoho/a%FF", "", 400},
		{"PUT", "/v1/connections/zoho/x", `{"refreshToken":"r"}{}`, 400},
		{"PATCH", "/v1/connections/zoho/x", `{}`, 405},
	} {
		if code, body := r.do(t, tc.method, tc.path, tc.body); code != tc.code {
			t.Errorf("%s %s: %d %v, want %d", tc.method, tc.path, code, body, tc.code)
		}
	}
}
