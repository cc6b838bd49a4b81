"""Real-component test infrastructure: a PKI, the reference registry, a token server and seeded images, and
(clitools) the installed console scripts run as real processes.

Nothing here mocks a registry: every fixture runs the real CNCF distribution registry and real skopeo,
so the code under test meets the same bytes, headers and auth flows it meets in the wild.
"""
