package zohocrm

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the Notification API (enable.html: token at most 50 characters, channel_id a long) and our
// own bounds on what one channel may carry.
const (
	// MaxTokenLen is Zoho's bound on a channel token, in characters.
	MaxTokenLen = 50
	// maxChannelIDLen keeps ids within a positive int64 (Zoho's "long") and matches the channel store.
	maxChannelIDLen = 18
	maxEvents       = 100
	maxNotifyURLLen = 2048
	maxTokenBytes   = 4096 // an access token is ~70 bytes; anything near this is not one
)

var (
	channelIDPattern = regexp.MustCompile(`^[0-9]{1,18}$`)
	// eventPattern is {module_api_name}.{operation}; module API names are letters, digits and
	// underscores (custom modules end in "__s" or similar), operations are Zoho's four.
	eventPattern   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}\.(all|create|edit|delete)$`)
	versionPattern = regexp.MustCompile(`^v[0-9]{1,2}(\.[0-9]{1,2})?$`)
)

func checkChannelID(id string) error {
	if !channelIDPattern.MatchString(id) || strings.Trim(id, "0") == "" {
		return fmt.Errorf("channel id must be 1-%d digits and not zero", maxChannelIDLen)
	}
	return nil
}

// checkWatch refuses, before anything is sent, what Zoho would refuse or what we must never send.
func checkWatch(w Watch) error {
	if err := checkChannelID(w.ChannelID); err != nil {
		return err
	}
	if len(w.Events) == 0 || len(w.Events) > maxEvents {
		return fmt.Errorf("a channel needs 1-%d events", maxEvents)
	}
	for _, e := range w.Events {
		if !eventPattern.MatchString(e) {
			return errors.New(`each event must be "{Module}.{all|create|edit|delete}"`)
		}
	}
	if w.Expiry.IsZero() {
		return errors.New("channel expiry is required")
	}
	if !utf8.ValidString(w.Token) || utf8.RuneCountInString(w.Token) > MaxTokenLen {
		return fmt.Errorf("token must be at most %d characters of UTF-8", MaxTokenLen)
	}
	for _, r := range w.Token {
		if unicode.IsControl(r) {
			return errors.New("token must not hold control characters")
		}
	}
	return checkNotifyURL(w.NotifyURL)
}

// checkNotifyURL: Zoho posts notifications to an absolute http(s) URL; it may carry a query (Zoho
// echoes it as query_params) but no credentials.
func checkNotifyURL(s string) error {
	if s == "" || len(s) > maxNotifyURLLen {
		return fmt.Errorf("notify URL is required, at most %d bytes", maxNotifyURLLen)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
		return errors.New("notify URL must be an absolute http(s) URL")
	}
	if u.User != nil {
		return errors.New("notify URL must not carry user information")
	}
	if u.Fragment != "" {
		return errors.New("notify URL must not carry a fragment")
	}
	return nil
}

// checkAPIDomain accepts only what Zoho's token endpoint answers as api_domain: a scheme and a host
// ("https://www.zohoapis.eu"), nothing else. A path, query, fragment or user information could send the
// access token somewhere other than Zoho's API root, so they are refused rather than stripped. Plain
// http is accepted only for loopback hosts (the test stand-in).
func checkAPIDomain(s string) (*url.URL, error) {
	const what = "api domain must be an http(s) origin such as https://www.zohoapis.com"
	if s == "" || len(s) > 256 {
		return nil, errors.New(what)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery ||
		u.Fragment != "" || (u.Path != "" && u.Path != "/") || u.RawPath != "" {
		return nil, errors.New(what)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, errors.New("api domain must use https (http only for loopback)")
		}
	default:
		return nil, errors.New(what)
	}
	if strings.ContainsAny(u.Host, " \\%") {
		return nil, errors.New(what)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkAccessToken refuses an empty token and anything that could break out of the header.
func checkAccessToken(t string) error {
	if t == "" || len(t) > maxTokenBytes {
		return errors.New("access token is required")
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c >= 0x7f {
			return errors.New("access token must be printable ASCII without spaces")
		}
	}
	return nil
}
