package audit

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

func TestRedactorMatchesSecretKeys(t *testing.T) {
	r := newRedactor(DefaultRedactKeys)
	for key, want := range map[string]bool{
		"password": true, "Password": true, "PASSWORD": true, "db_password": true, "secret": true,
		"clientSecret": true, "client_secret": true, "client-secret": true, "token": true, "csrf_token": true,
		"refresh_token": true, "refreshToken": true, "access_token": true, "AccessToken": true, "api_key": true,
		"apiKey": true, "X-Api-Key": true, "x.api.key": true, "API KEY": true, "Authorization": true,
		"proxy-authorization": true, "cookie": true, "Set-Cookie": true,
		// Counters and names that merely contain a word stay readable.
		"input_tokens": false, "token_count": false, "tokenizer": false, "secretary": false, "passwords_changed": false,
		"keys": false, "api": false, "actor": false, "": false, "sergas.redacted": false,
	} {
		if got := r.secret(key); got != want {
			t.Errorf("secret(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestRedactReplacesAtAnyDepth(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		redacted       bool
	}{
		{"none", `{"stage":"Won","n":3}`, `{"n":3,"stage":"Won"}`, false},
		{"top level", `{"password":"hunter2","user":"ann"}`, `{"password":"[REDACTED]","sergas.redacted":true,"user":"ann"}`, true},
		{"any type", `{"token":{"a":1},"apiKey":[1,2],"secret":7,"cookie":null}`,
			`{"apiKey":"[REDACTED]","cookie":"[REDACTED]","secret":"[REDACTED]","sergas.redacted":true,"token":"[REDACTED]"}`, true},
		{"nested object", `{"request":{"headers":{"Authorization":"Bearer abc","Accept":"*/*"}}}`,
			`{"request":{"headers":{"Accept":"*/*","Authorization":"[REDACTED]"}},"sergas.redacted":true}`, true},
		{"objects in arrays", `{"calls":[{"X-Api-Key":"k1"},[{"clientSecret":"s"}],"token"]}`,
			`{"calls":[{"X-Api-Key":"[REDACTED]"},[{"clientSecret":"[REDACTED]"}],"token"],"sergas.redacted":true}`, true},
		{"values are not keys", `{"note":"my password is hunter2"}`, `{"note":"my password is hunter2"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal([]byte(tc.in), &m); err != nil {
				t.Fatal(err)
			}
			s, err := structpb.NewStruct(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := canonicalJSON(s, newRedactor(DefaultRedactKeys))
			if err != nil || got != tc.want {
				t.Fatalf("got %s, %v; want %s", got, err, tc.want)
			}
			before, _ := json.Marshal(m)
			if after, _ := json.Marshal(s.AsMap()); string(after) != string(before) {
				t.Errorf("the caller's request was changed: %s", after)
			}
			pe, _ := decodeMetadata(got)
			if pe.GetFields()[redactedKey].GetBoolValue() != tc.redacted {
				t.Errorf("redacted flag: want %v", tc.redacted)
			}
		})
	}
}

func TestRedactKeysAreConfigurable(t *testing.T) {
	s, _ := structpb.NewStruct(map[string]any{"password": "p", "SSN": "123"})
	if got, _ := canonicalJSON(s, newRedactor([]string{"ssn"})); got != `{"SSN":"[REDACTED]","password":"p","sergas.redacted":true}` {
		t.Errorf("keys ssn: %s", got)
	}
	if got, _ := canonicalJSON(s, newRedactor(nil)); got != `{"SSN":"123","password":"p"}` {
		t.Errorf("no keys: %s", got)
	}
}

func TestRedactedKeyIsReserved(t *testing.T) {
	s, _ := structpb.NewStruct(map[string]any{redactedKey: true})
	_, err := canonicalJSON(s, newRedactor(DefaultRedactKeys))
	wantInvalid(t, "caller sets "+redactedKey, err)
}
