"""The sans-I/O TCP core: connections and endpoints that take ``now`` and
return datagrams to send and their next deadline, never touching a socket or
a clock.  One module per job:

- connection: the RFC 9293 state machine; it calls the units below
- rtt: RTT estimation and the retransmission timeout (RFC 6298)
- recovery: NewReno and SACK fast recovery with PRR (RFC 6582, 6675, 6937)
- rack: RACK-TLP loss detection and tail loss probes (RFC 8985)
- ranges: sets of sequence ranges (the SACK scoreboard, the SACK blocks sent)
- receive: the bytes received and not yet read, in order and out of order
- congestion: the congestion controllers, the only writers of cwnd
- endpoint: demultiplexing, listeners, SYN cookies, the timer wheel
- events, config, isn: what the core reports, how it is tuned, its ISNs
"""
