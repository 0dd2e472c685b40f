package webui

// logRoutes are the routes of the log pages.
func (s *Server) logRoutes() []route { return nil }

// logPageFiles are the templates of the log pages.
var logPageFiles = []string{}
