package webhook

// Placeholders for the delivery RPCs (issue #10) while they are being built; each is deleted in the
// commit that implements it. None may remain when a session ends.
