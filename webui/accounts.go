package webui

// accountRoutes are the routes of the account pages: one's own account, and the managing of
// everyone's.
func (s *Server) accountRoutes() []route { return nil }

// accountPageFiles are the templates of the account pages.
var accountPageFiles = []string{}
