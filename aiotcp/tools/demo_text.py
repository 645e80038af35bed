"""The demo's words, in English and in Chinese: titles, the names of the
steps as the tutorials give them, and what each scenario shows."""
from __future__ import annotations

UI = {
    "en": {"subtitle": "real UDP datagrams on 127.0.0.1 (server UDP/TCP port {port}); sequence numbers relative "
                       "to each side's ISN; win= in bytes",
           "time": "time ms", "lost": "lost", "what": "What you just saw", "segments": "Segments",
           "from": "from", "segment": "segment", "step": "step", "wrote": "wrote"},
    "zh": {"subtitle": "127.0.0.1 上真实的 UDP 数据报（服务器 UDP/TCP 端口 {port}）；序号相对于各自的初始序号 ISN；"
                       "win= 单位为字节",
           "time": "时间 ms", "lost": "丢失", "what": "刚才发生了什么", "segments": "报文段",
           "from": "发送方", "segment": "报文段", "step": "步骤", "wrote": "已写入"},
}

TITLES = {
    "en": {
        "normal": "three-way handshake, data, four-way teardown started by the client",
        "refused": "a SYN to a port where nothing listens, answered by RST",
        "simultaneous-open": "simultaneous open: both sides send SYN at once",
        "simultaneous-close": "simultaneous close: both sides send FIN at once (CLOSING)",
        "fin-ack": "the server's ACK and FIN in one segment (no FIN_WAIT_2)",
        "half-close": "half-close: the server keeps sending in CLOSE_WAIT",
        "lost-final-ack": "the last ACK is lost: LAST_ACK retransmits its FIN, TIME_WAIT answers",
        "backlog-overflow": "accept queue full: the final ACK is dropped, the SYN-ACK retransmitted",
        "backlog-overflow-abort": "accept queue full with abort_on_overflow: the final ACK gets a RST",
        "syn-flood": "SYN flood: the SYN queue fills, SYN cookies let a real client in",
        "fast-retransmit": "a lost data segment: duplicate ACKs with SACK, fast retransmit",
        "zero-window": "a reader that stops: zero window, persist probes, the window reopens",
    },
    "zh": {
        "normal": "三次握手、数据传输、客户端发起的四次挥手",
        "refused": "SYN 发往无人监听的端口，对方以 RST 回应",
        "simultaneous-open": "同时打开：双方同时发送 SYN",
        "simultaneous-close": "同时关闭：双方同时发送 FIN（CLOSING 状态）",
        "fin-ack": "服务器的 ACK 与 FIN 合并在一个报文段中（不经过 FIN_WAIT_2）",
        "half-close": "半关闭：服务器在 CLOSE_WAIT 中继续发送数据",
        "lost-final-ack": "最后一个 ACK 丢失：LAST_ACK 重传 FIN，TIME_WAIT 再次确认",
        "backlog-overflow": "全连接队列已满：第三次握手的 ACK 被丢弃，SYN-ACK 被重传",
        "backlog-overflow-abort": "全连接队列已满且 abort_on_overflow：第三次握手的 ACK 换来 RST",
        "syn-flood": "SYN 洪泛：半连接队列被占满，SYN Cookie 让真实客户端仍能连接",
        "fast-retransmit": "一个数据段丢失：带 SACK 的重复确认，快速重传",
        "zero-window": "接收方停止读取：零窗口、持续（窗口探测）定时器、窗口重新打开",
    },
}

STEP_NAMES = {
    "en": {
        "hs1": "handshake 1 (SYN)", "hs2": "handshake 2 (SYN-ACK)", "hs3": "handshake 3 (ACK)",
        "hs2_cookie": "handshake 2 (SYN-ACK carrying a SYN cookie)",
        "sim_syn": "SYN (simultaneous open)", "sim_synack": "SYN-ACK (simultaneous open)",
        "retx_syn": "SYN retransmitted", "retx_synack": "SYN-ACK retransmitted",
        "fin1": "teardown 1 (FIN)", "ack2": "teardown 2 (ACK)", "fin3": "teardown 3 (FIN)",
        "ack4": "teardown 4 (ACK)", "fin23": "teardown 2+3 (ACK and FIN together)",
        "fin_sim": "FIN (simultaneous close)", "retx_fin": "FIN retransmitted",
        "ack4_again": "teardown 4 again (TIME_WAIT re-ACKs)", "ack_again": "ACK again",
        "rst": "reset (RST)", "data": "data", "ack": "ACK", "retx": "retransmission",
        "fast_retx": "fast retransmit", "dupack": "duplicate ACK (SACK)", "zero_window": "zero window",
        "probe": "window probe", "window_update": "window update",
    },
    "zh": {
        "hs1": "第一次握手 (SYN)", "hs2": "第二次握手 (SYN-ACK)", "hs3": "第三次握手 (ACK)",
        "hs2_cookie": "第二次握手（SYN-ACK 携带 SYN Cookie）",
        "sim_syn": "SYN（同时打开）", "sim_synack": "SYN-ACK（同时打开）",
        "retx_syn": "SYN 重传", "retx_synack": "SYN-ACK 重传",
        "fin1": "第一次挥手 (FIN)", "ack2": "第二次挥手 (ACK)", "fin3": "第三次挥手 (FIN)",
        "ack4": "第四次挥手 (ACK)", "fin23": "第二、三次挥手合并 (ACK+FIN)",
        "fin_sim": "FIN（同时关闭）", "retx_fin": "FIN 重传",
        "ack4_again": "再次第四次挥手（TIME_WAIT 重新确认）", "ack_again": "再次确认",
        "rst": "复位 (RST)", "data": "数据", "ack": "确认", "retx": "重传",
        "fast_retx": "快速重传", "dupack": "重复确认 (SACK)", "zero_window": "零窗口",
        "probe": "窗口探测", "window_update": "窗口更新",
    },
}

EXPLANATIONS = {
    "en": {
        "normal": (
            "The client's SYN, the server's SYN-ACK and the client's ACK are the three-way handshake (RFC 9293 "
            "section 3.5): each side's SYN takes one sequence number and must be acknowledged, so both ISNs are "
            "known before any data. The client closed first: its FIN (teardown 1) took it to FIN_WAIT_1, the "
            "server's ACK (teardown 2) to FIN_WAIT_2 while the server sat in CLOSE_WAIT until its application "
            "closed; the server's FIN (teardown 3) put it in LAST_ACK and the client's ACK (teardown 4) ended it. "
            "The side that closes first waits in TIME_WAIT for 2 x MSL (section 3.6.1) so that a retransmitted "
            "FIN is still answered and old segments die before the same ports are used again."),
        "refused": (
            "A SYN arrived where no TCP port listens. RFC 9293 section 3.10.7.1: a segment to a CLOSED port is "
            "answered with a RST (here RST-ACK, acknowledging the SYN so the client accepts it), and the client "
            "in SYN_SENT takes an acceptable RST as 'connection refused' (section 3.10.7.3): open_connection "
            "raises ConnectionRefusedError as it does over kernel TCP."),
        "simultaneous-open": (
            "Neither side listened: both called open_connection towards the other at once, so both sent a SYN "
            "from SYN_SENT. A SYN received in SYN_SENT moves a side to SYN_RCVD and is answered with a SYN-ACK "
            "repeating its own SYN (RFC 9293 section 3.5, figure 8); each SYN-ACK then acknowledges the other's "
            "SYN and both reach ESTABLISHED. Four segments instead of three, and no server: this is also how "
            "NAT hole punching works."),
        "simultaneous-close": (
            "Both applications closed at the same instant, so the FINs crossed. A side in FIN_WAIT_1 that "
            "receives a FIN before the ACK of its own goes to CLOSING (RFC 9293 section 3.6, figure 13); the ACK "
            "of its FIN then takes it to TIME_WAIT. Both sides therefore wait in TIME_WAIT, and neither passes "
            "through FIN_WAIT_2, CLOSE_WAIT or LAST_ACK."),
        "fin-ack": (
            "The server's application closed as soon as it read the end of the stream, before the ACK of the "
            "client's FIN had left: TCP may delay an ACK (RFC 9293 section 3.8.6.3, RFC 1122 4.2.3.2), so the "
            "ACK rode on the server's own FIN (teardown 2 and 3 in one segment). The client in FIN_WAIT_1 got "
            "the ACK of its FIN and the peer's FIN together and went straight to TIME_WAIT, never through "
            "FIN_WAIT_2: three segments for the teardown, as captures often show."),
        "half-close": (
            "The client called write_eof() (shutdown(SHUT_WR)): its FIN says 'no more data from me', not "
            "'goodbye'. The server, in CLOSE_WAIT, can still send (RFC 9293 section 3.6: a connection is closed "
            "only when both directions are), and it answered after the client's FIN; the client in FIN_WAIT_2 "
            "kept reading until the server's FIN. This is how a request can be sent whole and the answer still "
            "come back."),
        "lost-final-ack": (
            "The relay dropped the client's last ACK (teardown 4). The server in LAST_ACK never saw its FIN "
            "acknowledged, so its retransmission timer sent the FIN again (RFC 9293 section 3.8.1); the client, "
            "waiting in TIME_WAIT, acknowledged it again and restarted its 2 x MSL timer (section 3.10.7.4). "
            "Had the client closed outright, that FIN would have met a RST and the server would have reported "
            "an error: this is why TIME_WAIT exists."),
        "backlog-overflow": (
            "Two clients connected at the same instant to a listener with backlog 1 whose application had "
            "accepted nothing yet. The first to complete filled the accept queue; the drawn client's final ACK "
            "then found it full and, as Linux does with tcp_abort_on_overflow = 0, was dropped: the server stays "
            "in SYN_RCVD and retransmits its SYN-ACK, whose ACK is dropped again, while the client already "
            "believes it is connected. Once the application accepted, the client's next segment completed the "
            "handshake (Config.abort_on_overflow, net.ipv4.tcp_abort_on_overflow)."),
        "backlog-overflow-abort": (
            "The same full accept queue, with Config(abort_on_overflow=True) (Linux tcp_abort_on_overflow = 1): "
            "the final ACK is answered with a RST instead of being dropped. The client, which already reached "
            "ESTABLISHED, learns at once that the server cannot take it (its read raises ConnectionResetError) "
            "rather than waiting through SYN-ACK retransmissions; the cost is refusing connections a burst "
            "could have absorbed."),
        "syn-flood": (
            "Forged SYNs from ports that never answer filled the listener's SYN queue with half-open connections "
            "in SYN_RCVD (Config.syn_backlog, tcp_max_syn_backlog). With the queue full the server keeps no "
            "state for a new SYN: its SYN-ACK carries a SYN cookie (RFC 4987), an ISN computed from the "
            "addresses, ports, time and MSS, and the connection is created only when an ACK returns that "
            "cookie plus one. The real client's handshake looked ordinary to it, and it connected "
            "(Config.syn_cookies, tcp_syncookies)."),
        "fast-retransmit": (
            "The relay dropped the client's fourth data segment. Every later segment arrived out of order, and "
            "the server acknowledged each at once with the same cumulative ACK and a SACK block saying what it "
            "did have (RFC 2018). Duplicate ACKs and SACK told the client the segment was lost long before a "
            "retransmission timeout: it retransmitted it at once (fast retransmit, RFC 5681 section 3.2, RFC "
            "6675, RACK in RFC 8985) and CUBIC cut its congestion window (cwnd, in segments) by 30 percent."),
        "zero-window": (
            "The server's application read nothing for a second, and the server had a 4 KiB receive buffer. "
            "As it filled, the window the server advertised shrank to win=0 (RFC 9293 section 3.8.6): the "
            "client must not send into a zero window, so it ran the persist timer and sent window probes at "
            "growing intervals (section 3.8.6.1), each answered with win=0. When the application read, the "
            "server sent a window update and the rest of the data flowed."),
    },
    "zh": {
        "normal": (
            "客户端的 SYN、服务器的 SYN-ACK 和客户端的 ACK 就是三次握手（RFC 9293 第 3.5 节）：双方的 SYN 各占一个序号且必须"
            "被确认，所以在传数据之前双方都知道了对方的初始序号。客户端先关闭：它的 FIN（第一次挥手）使它进入 FIN_WAIT_1，"
            "服务器的 ACK（第二次挥手）使它进入 FIN_WAIT_2，而服务器停在 CLOSE_WAIT 直到应用关闭；服务器的 FIN（第三次挥手）"
            "使它进入 LAST_ACK，客户端的 ACK（第四次挥手）结束连接。先关闭的一方在 TIME_WAIT 中等待 2×MSL（第 3.6.1 节），"
            "以便仍能回应重传的 FIN，并让旧的报文段在相同端口被再次使用前消失。"),
        "refused": (
            "SYN 到达了一个没有监听的端口。按 RFC 9293 第 3.10.7.1 节，发往 CLOSED 端口的报文段以 RST 回应（这里是 RST-ACK，"
            "确认了该 SYN，客户端才会接受它）；处于 SYN_SENT 的客户端把可接受的 RST 视为“连接被拒绝”（第 3.10.7.3 节）："
            "open_connection 抛出 ConnectionRefusedError，与内核 TCP 一样。"),
        "simultaneous-open": (
            "双方都没有监听，而是同时向对方调用 open_connection，于是双方都在 SYN_SENT 中发出 SYN。在 SYN_SENT 中收到 SYN "
            "会进入 SYN_RCVD，并以重复自己 SYN 的 SYN-ACK 回应（RFC 9293 第 3.5 节图 8）；每个 SYN-ACK 确认了对方的 SYN，"
            "双方进入 ESTABLISHED。四个报文段而不是三个，也没有服务器：NAT 打洞也是这样工作的。"),
        "simultaneous-close": (
            "两个应用在同一时刻关闭，两个 FIN 在途中交错。处于 FIN_WAIT_1 的一方在收到自己 FIN 的 ACK 之前收到对方的 FIN，"
            "就进入 CLOSING（RFC 9293 第 3.6 节图 13）；之后自己的 FIN 被确认，进入 TIME_WAIT。因此双方都要在 TIME_WAIT "
            "中等待，谁也不经过 FIN_WAIT_2、CLOSE_WAIT 或 LAST_ACK。"),
        "fin-ack": (
            "服务器的应用一读到流的结尾就关闭了，此时对客户端 FIN 的 ACK 还没发出：TCP 可以延迟 ACK（RFC 9293 第 3.8.6.3 节，"
            "RFC 1122 第 4.2.3.2 节），于是 ACK 搭在服务器自己的 FIN 上（第二、三次挥手合并为一个报文段）。处于 FIN_WAIT_1 的"
            "客户端同时得到对自己 FIN 的确认和对方的 FIN，直接进入 TIME_WAIT，不经过 FIN_WAIT_2：挥手只用了三个报文段，"
            "抓包中常能见到。"),
        "half-close": (
            "客户端调用了 write_eof()（shutdown(SHUT_WR)）：它的 FIN 表示“我不再发送数据”，而不是“再见”。处于 CLOSE_WAIT "
            "的服务器仍可发送（RFC 9293 第 3.6 节：两个方向都关闭后连接才关闭），它在收到客户端的 FIN 之后才作答；处于 "
            "FIN_WAIT_2 的客户端一直读取，直到服务器的 FIN。这样请求可以完整发出，而回答仍能传回。"),
        "lost-final-ack": (
            "中继丢弃了客户端的最后一个 ACK（第四次挥手）。处于 LAST_ACK 的服务器始终没有看到自己的 FIN 被确认，于是重传"
            "定时器再次发送 FIN（RFC 9293 第 3.8.1 节）；在 TIME_WAIT 中等待的客户端再次确认它，并重新开始 2×MSL 计时"
            "（第 3.10.7.4 节）。如果客户端直接关闭，这个 FIN 会遇到 RST，服务器会报告错误：这就是 TIME_WAIT 存在的原因。"),
        "backlog-overflow": (
            "两个客户端同时连接一个 backlog 为 1、应用尚未 accept 的监听端口。先完成的一个占满了全连接队列；图中客户端的第三次"
            "握手 ACK 到达时队列已满，于是像 Linux 在 tcp_abort_on_overflow = 0 时那样被丢弃：服务器停留在 SYN_RCVD 并重传 "
            "SYN-ACK，其 ACK 再次被丢弃，而客户端已经认为连接建立。应用 accept 之后，客户端的下一个报文段完成了握手"
            "（Config.abort_on_overflow，net.ipv4.tcp_abort_on_overflow）。"),
        "backlog-overflow-abort": (
            "同样是已满的全连接队列，但使用 Config(abort_on_overflow=True)（Linux tcp_abort_on_overflow = 1）：第三次握手的 "
            "ACK 得到 RST 而不是被丢弃。已进入 ESTABLISHED 的客户端立刻知道服务器无法接收它（读取抛出 "
            "ConnectionResetError），而不必等待 SYN-ACK 重传；代价是拒绝了本可以被一次突发吸收的连接。"),
        "syn-flood": (
            "来自从不应答的端口的伪造 SYN 把监听端口的半连接队列塞满了处于 SYN_RCVD 的半开连接（Config.syn_backlog，"
            "tcp_max_syn_backlog）。队列满后，服务器不再为新的 SYN 保存状态：它的 SYN-ACK 携带 SYN Cookie（RFC 4987），"
            "即由地址、端口、时间和 MSS 计算出的初始序号，只有当返回的 ACK 带着该 Cookie 加一时才创建连接。真实客户端的握手"
            "在它看来与平常无异，并成功连接（Config.syn_cookies，tcp_syncookies）。"),
        "fast-retransmit": (
            "中继丢弃了客户端的第四个数据段。之后的每个报文段都是乱序到达，服务器立即以相同的累计确认号回应，并用 SACK 块"
            "说明自己已收到哪些数据（RFC 2018）。重复确认和 SACK 让客户端远在重传超时之前就知道该段丢失：它立即重传"
            "（快速重传，RFC 5681 第 3.2 节、RFC 6675、RFC 8985 的 RACK），CUBIC 把拥塞窗口（cwnd，单位为报文段）减少 30%。"),
        "zero-window": (
            "服务器的应用一秒钟内什么也没读，而服务器的接收缓冲区只有 4 KiB。缓冲区填满时，服务器通告的窗口缩小到 win=0"
            "（RFC 9293 第 3.8.6 节）：客户端不得向零窗口发送数据，于是启动持续定时器，以逐渐增大的间隔发送窗口探测"
            "（第 3.8.6.1 节），每次都得到 win=0 的回应。应用开始读取后，服务器发送窗口更新，其余数据继续传输。"),
    },
}
