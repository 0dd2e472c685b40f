package webui

// networkRoutes are the routes of the network pages.
func (s *Server) networkRoutes() []route { return nil }

// networkPageFiles are the templates of the network pages.
var networkPageFiles = []string{}
