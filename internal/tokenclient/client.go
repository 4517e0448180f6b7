// Package tokenclient is the services' connection to the token service: the webhook service asks it for
// the access token of a Zoho connection when it manages Zoho CRM notification channels.
package tokenclient

import (
	"context"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/lazyconn"
)

// Client authenticates with an API key that holds token:read (empty when the client certificate is
// mapped to that scope instead). It can be created before the token service's address is known.
type Client struct{ *lazyconn.Conn }

// New returns an unconnected client.
func New(apiKey string) *Client { return &Client{lazyconn.New("token", apiKey)} }

// AccessToken returns a usable access token of the connection.
func (c *Client) AccessToken(ctx context.Context, provider, connectionID string) (*tokenv1.GetAccessTokenResponse, error) {
	conn, ctx, err := c.Get(ctx)
	if err != nil {
		return nil, err
	}
	return tokenv1.NewTokenServiceClient(conn).GetAccessToken(ctx, &tokenv1.GetAccessTokenRequest{Provider: provider, ConnectionId: connectionID})
}
