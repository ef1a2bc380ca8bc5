"""Cue words of the rule layer, in Chinese and English, with weights (1 weak .. 3 decisive).

General words of each kind, not phrases of any one data set: a cue belongs here when a support
lead would say it points to the intent in most messages that contain it.
"""

from __future__ import annotations

from shared.contracts import Intent

# fmt: off
Cues = dict[str, float]

INTENT_CUES: dict[Intent, tuple[Cues, Cues]] = {
    # intent: (Chinese cues, English cues)
    "refund": (
        {
            "退款": 3, "退钱": 3, "退费": 3, "钱退": 3, "退回": 1.5, "退还": 2, "返还": 2, "原路返回": 2,
            "退货": 2, "款项": 1, "赔偿": 2, "退票": 2, "退回来": 2, "能退吗": 2,
            "退一下款": 3, "退款呢": 3,
        },
        {
            "refund": 3, "refunded": 3, "money back": 3, "reimburse": 3, "reimbursement": 3,
            "my money": 2, "return it": 1.5, "compensation": 2, "chargeback": 2,
        },
    ),
    "delivery": (
        {
            "快递": 2, "物流": 2, "发货": 2, "配送": 2, "送达": 2, "派送": 2, "包裹": 2, "没收到": 2, "还没到": 2,
            "没到": 1, "运单": 2, "签收": 2, "丢件": 3, "寄": 1, "收货": 1, "到货": 2, "送货": 2, "快递员": 2,
            "顺丰": 2, "中通": 2, "圆通": 2, "韵达": 2, "申通": 2, "邮政": 1.5, "物留": 2, "发快递": 2, "揽收": 2,
            "在途": 2, "送到": 1.5, "到哪了": 2, "单号": 1.5, "少发": 2, "漏发": 2,
        },
        {
            "delivery": 2, "deliver": 2, "delivered": 2, "shipping": 2, "shipped": 2,
            "ship": 1, "shipment": 2, "package": 2, "parcel": 2, "tracking": 2, "courier": 2,
            "arrived": 1.5, "arrive": 1, "not arrived": 2, "hasn't arrived": 2, "still processing": 2, "in transit": 2, "out for delivery": 2, "dispatch": 2,
            "dispatched": 2, "fedex": 2, "ups": 1.5, "dhl": 2, "usps": 2,
            "where is my order": 3, "lost": 1, "recieved": 1, "received": 1, "postage": 1.5,
        },
    ),
    "billing": (
        {
            "扣费": 3, "扣款": 3, "扣了": 2, "多扣": 3, "重复扣": 3, "扣钱": 3, "账单": 3, "发票": 3, "付款": 2,
            "支付": 2, "收费": 2, "费用": 2, "价格": 1, "价钱": 1, "充值": 2, "信用卡": 2, "开票": 3, "税号": 2,
            "差价": 2, "付了": 1, "多收": 3, "乱收费": 3, "计费": 3, "账单号": 2, "银行卡": 1.5, "优惠券": 1,
            "支付宝": 2, "微信支付": 2, "到账": 1.5, "报销": 1.5, "贵": 1, "运费": 1.5,
        },
        {
            "charged": 3, "charge": 2, "charges": 2, "invoice": 3, "billing": 3, "billed": 3,
            "bill": 2, "payment": 2, "paid": 1, "pay": 1, "double charged": 3,
            "charged twice": 3, "overcharged": 3, "price": 1, "pricing": 1, "credit card": 2,
            "receipt": 2, "fee": 2, "fees": 2, "vat": 2, "coupon": 1, "discount": 1, "card": 1,
            "paypal": 2, "alipay": 2,
        },
    ),
    "account": (
        {
            "登录": 3, "登陆": 3, "密码": 3, "账号": 2, "账户": 2, "帐号": 2, "帐户": 2, "注册": 2, "验证码": 3,
            "绑定": 2, "解绑": 2, "冻结": 2, "锁定": 2, "被锁": 3, "头像": 1, "昵称": 1, "个人信息": 2, "实名": 2,
            "找回": 2, "改手机号": 3, "换绑": 3,
        },
        {
            "login": 3, "log in": 3, "sign in": 3, "signin": 3, "password": 3, "pasword": 3,
            "account": 2, "username": 2, "verification code": 3, "2fa": 3, "two-factor": 3,
            "locked out": 3, "locked": 1.5, "reset my": 1, "profile": 2, "register": 2,
            "sign up": 2, "otp": 3, "email address": 1,
            "verify my": 2, "phone number": 1.5, "users on one account": 3,
        },
    ),
    "product_quality": (
        {
            "坏了": 3, "破损": 3, "损坏": 3, "质量": 2, "瑕疵": 3, "发错": 3, "错发": 3, "少发": 2, "漏发": 2,
            "缺件": 3, "划痕": 3, "裂": 2, "漏水": 3, "异味": 3, "过期": 3, "假货": 3, "次品": 3, "不新鲜": 3,
            "尺码不对": 3, "颜色不对": 2, "褪色": 3, "变质": 3, "碎了": 3, "开不了机": 2, "充不进电": 3, "做工": 2,
            "掉色": 3, "起球": 3, "不合适": 1, "少了": 1, "烂了": 3, "坏的": 3, "破了": 3, "不亮": 2, "换货": 2,
            "更换": 1.5, "换一个": 1.5, "换个": 1.5, "质量问题": 3,
            "鼓包": 3, "发烫": 2, "印刷": 2, "空白": 1, "松动": 2, "坏": 2, "碎": 2, "不一样": 1.5, "色差": 3,
        },
        {
            "broken": 3, "defective": 3, "damaged": 3, "faulty": 3, "wrong item": 3,
            "wrong size": 3, "wrong colour": 2, "wrong color": 2, "quality": 2, "scratch": 3,
            "scratched": 3, "cracked": 3, "leaking": 3, "leaks": 3, "missing part": 3,
            "missing parts": 3, "stopped working": 3, "expired": 3, "fake": 3,
            "counterfeit": 3, "torn": 3, "ripped": 3, "smells": 2, "fell apart": 3,
            "not as described": 3, "dead on arrival": 3, "shattered": 3, "missing": 1,
            "replace": 2, "replacement": 2, "exchange": 2,
            "stopped charging": 3, "not charging": 3, "wobbly": 2, "got the wrong": 3, "received the wrong": 3, "sent the wrong": 3, "defect": 3, "peeling": 3, "loose": 2,
        },
    ),
    "technical": (
        {
            "崩溃": 3, "闪退": 3, "报错": 3, "打不开": 3, "故障": 2, "卡顿": 3, "卡住": 2, "白屏": 3, "黑屏": 3,
            "加载": 2, "网站": 2, "页面": 2, "软件": 2, "更新后": 2, "升级后": 2, "bug": 3, "无法访问": 3,
            "网络错误": 3, "提示错误": 3, "错误代码": 3, "同步": 2, "点不了": 3, "刷不出来": 3, "无法上传": 2, "系统": 1,
            "app": 2, "小程序": 2, "一直转圈": 3,
            "没反应": 3, "无反应": 3, "浏览器": 2, "推送": 2, "版本": 1.5, "更新": 1.5, "登不上": 2, "连不上": 2, "网页": 2,
        },
        {
            "crash": 3, "crashes": 3, "crashed": 3, "crashing": 3, "error": 3, "bug": 3,
            "glitch": 3, "not loading": 3, "won't load": 3, "doesn't load": 3, "freeze": 3,
            "freezes": 3, "frozen": 2, "app": 2, "website": 2, "site": 1.5, "page": 1,
            "404": 3, "timeout": 2, "blank screen": 3, "sync": 2, "can't upload": 3,
            "browser": 2, "server": 2, "not working": 1.5, "doesn't work": 1, "broken link": 3,
            "session expired": 3, "logging me out": 2, "logged out": 2, "unresponsive": 3, "loading": 2, "update": 1, "version": 1,
        },
    ),
    "response_speed": (
        {
            "响应": 3, "回复": 2, "太慢": 2, "慢": 1, "速度": 2, "等了": 3, "等待": 2, "没人回": 3, "没人理": 3,
            "没人接": 3, "没人管": 3, "打不通": 3, "排队": 2, "效率": 2, "处理速度": 3, "一直在等": 3, "迟迟": 2,
            "催": 2, "拖": 2, "石沉大海": 3, "转人工": 2, "没回音": 3, "没有回应": 3, "没人处理": 3, "等半天": 3,
            "及时": 1.5,
            "不回": 2, "没回": 3, "人呢": 3, "坐席忙": 3, "忙音": 3, "占线": 3, "已读不回": 3, "失联": 3, "几天了": 1.5,
        },
        {
            "slow": 2, "waiting": 2, "callback": 2, "call back": 2, "anyone there": 3, "been waiting": 3, "no reply": 3, "no response": 3,
            "no one answers": 3, "nobody answers": 3, "response time": 3, "faster": 2,
            "on hold": 3, "took forever": 3, "still waiting": 3, "haven't heard back": 3,
            "heard back": 2, "get back to me": 2, "ignored": 2, "respond": 2, "responded": 2,
            "reply": 1.5, "queue": 2, "hours": 1, "days": 0.5, "no answer": 3, "unanswered": 3,
            "hold time": 3, "auto-reply": 2, "get back to you": 2, "days ago": 1.5, "read my": 1, "dms": 1.5, "wait time": 3, "hold": 1.5,
        },
    ),
    "cancellation": (
        {
            "取消": 3, "退订": 3, "注销": 3, "解约": 3, "不要了": 2, "停止续费": 3, "自动续费": 2, "撤销": 2,
            "终止": 2, "退会员": 3, "关闭自动": 3, "不想续": 3,
        },
        {
            "cancel": 3, "cancelled": 3, "canceled": 3, "cancellation": 3, "unsubscribe": 3,
            "terminate": 2, "close my account": 3, "delete my account": 3,
            "stop my subscription": 3, "end my subscription": 3, "auto-renew": 2,
            "auto renewal": 2, "opt out": 2,
        },
    ),
    "complaint": (
        {
            "投诉": 3, "态度": 3, "恶劣": 3, "差劲": 3, "太差": 2, "失望": 2, "垃圾": 2, "欺骗": 3, "忽悠": 3,
            "不负责": 3, "敷衍": 3, "推卸": 3, "无语": 2, "气死": 2, "服务差": 3, "骗子": 3, "什么破": 2, "坑人": 3,
            "没礼貌": 3, "凶": 1.5, "挂电话": 3, "不耐烦": 3, "甩锅": 3,
            "虚假宣传": 3, "摆设": 2, "工号": 3, "打断": 2, "员工": 2, "欺骗消费者": 3, "做生意": 2, "不满意": 1.5, "极不满意": 2, "售后": 1,
        },
        {
            "complain": 3, "complaint": 3, "rude": 3, "unprofessional": 3, "unacceptable": 2,
            "terrible": 2, "awful": 2, "worst": 2, "disappointed": 2, "disgusting": 2,
            "poor service": 3, "bad service": 3, "scam": 3, "ridiculous": 2, "never again": 2,
            "hung up": 3, "attitude": 3, "manager": 1, "supervisor": 1, "horrible": 2,
            "disgusted": 3, "treated": 2, "laughed at": 3, "staff": 2, "employee": 2, "joke": 2, "false advertising": 3, "misleading": 3,
        },
    ),
    "praise": (
        {
            "谢谢": 2, "感谢": 3, "太棒": 3, "很棒": 3, "非常好": 2, "点赞": 3, "给力": 3, "好评": 3, "专业": 2,
            "耐心": 2, "赞": 2, "表扬": 3, "贴心": 3, "辛苦了": 3, "超好": 2, "好用": 2, "五星": 3, "热情": 2,
            "周到": 3, "靠谱": 3,
            "感动": 3, "负责": 1.5, "好用多了": 3, "下次还来": 3, "回购": 3, "满意": 1, "挺好": 2, "很好": 2,
        },
        {
            "thank": 2, "thanks": 2, "thank you": 2, "great": 2, "excellent": 3, "awesome": 3,
            "amazing": 3, "love": 2, "helpful": 3, "well done": 3, "appreciate": 3, "kudos": 3,
            "fantastic": 3, "wonderful": 3, "shout out": 3, "perfect": 2,
            "above and beyond": 3, "superb": 3, "brilliant": 3, "impressed": 3,
            "best": 2, "rock": 2, "happy": 1.5, "love your": 3, "shoutout": 3, "all good": 2, "thx": 1.5, "great service": 3,
        },
    ),
    "feedback": (
        {
            "满意度": 4, "评分": 3, "打分": 3, "评价": 2, "一般般": 2, "还行": 2, "凑合": 2, "中评": 3,
            "差评": 1.5, "星": 1, "马马虎虎": 2, "还可以吧": 2,
            "总体": 2, "挺满意": 2, "满意": 1, "不满意": 1,
        },
        {
            "satisfaction": 4, "rating": 3, "rate": 2, "out of 5": 3, "out of 10": 3,
            "stars": 2, "star": 1.5, "feedback": 2, "survey": 2, "so-so": 2, "mediocre": 2,
            "it was ok": 2, "it was okay": 2,
            "satisfied": 2, "dissatisfied": 2, "overall": 1.5, "meh": 2, "experience": 1,
        },
    ),
    "inquiry": (
        {
            "请问": 3, "怎么": 2, "如何": 2, "是否": 2, "能否": 1, "可以吗": 2, "多少钱": 3, "什么时候": 2,
            "哪里": 2, "有没有": 2, "营业时间": 3, "几点": 2, "咨询": 3, "想了解": 3, "问一下": 3, "吗": 1,
            "支持": 1, "多久": 1.5, "哪些": 2,
            "偏大": 2, "偏小": 2, "保修": 2, "有货": 2, "现货": 2, "补货": 2, "优惠": 1.5, "活动": 1, "政策": 2, "区别": 2, "地址在哪": 3,
        },
        {
            "how": 2, "what": 1, "when": 1, "where": 1, "do you": 2, "can i": 2,
            "is it possible": 3, "does it": 2, "is there": 2, "are there": 2, "question": 2,
            "wondering": 3, "would like to know": 3, "could you tell": 3, "opening hours": 3,
            "which": 1.5, "any way to": 2, "is it": 1,
            "do u": 2, "do you have": 3, "warranty": 2, "in stock": 2, "deals": 2, "difference between": 3, "policy": 2,
        },
    ),
    "other": (
        {"打错": 3, "拨错": 3, "新年快乐": 3, "节日快乐": 3, "私聊": 2, "加微信": 3, "兼职": 3, "刷单": 3, "拼单": 2, "代购": 2, "中奖": 3, "领取": 1.5, "点击链接": 3},
        {"wrong number": 3, "dialled the wrong": 3, "dialed the wrong": 3, "ignore my previous": 3, "happy new year": 3, "merry christmas": 3, "click": 2, "bit.ly": 3, "http": 1.5, "winner": 3, "congratulations": 2, "gift card": 2, "selected": 1.5, "crypto": 3, "free money": 3, "promo code": 1},
    ),
}

# When two intents score the same, the first in this order wins: specific problems before
# general ones, and questions last.
INTENT_PRIORITY: tuple[Intent, ...] = (
    "refund", "cancellation", "billing", "product_quality", "delivery", "account", "technical",
    "response_speed", "complaint", "feedback", "praise", "inquiry", "other",
)
PROBLEM_INTENTS = frozenset(
    {
        "refund", "cancellation", "billing", "product_quality", "delivery", "account",
        "technical", "response_speed", "complaint",
    }
)

# Words that say something is wrong (a state, not a topic): they make a message about a
# problem rather than a question about a topic.
PROBLEM_ZH = (
    "永远", "总是", "老是", "每次", "反复", "都是", "不回", "没反应",
    "没收到", "还没", "一直", "无法", "不能", "失败", "错误", "坏", "没人", "太慢", "不了", "出问题", "有问题", "又",
    "仍然", "依然", "至今", "怎么还", "为什么",
)
PROBLEM_EN = (
    "keep", "keeps", "every time", "always", "stopped",
    "not", "never", "hasn't", "haven't", "didn't", "doesn't", "don't", "can't", "cannot",
    "won't", "wasn't", "isn't", "unable", "failed", "fails", "broken", "missing", "still",
    "wrong", "again", "no one", "nobody", "problem", "issue", "why",
)

POSITIVE_ZH: Cues = {
    "满意": 1.5, "很好": 2, "非常好": 2, "不错": 1.5, "感谢": 2, "谢谢": 1.5, "棒": 2, "开心": 2, "喜欢": 2,
    "给力": 2, "好评": 2, "点赞": 2, "专业": 1, "耐心": 1, "满分": 2, "超赞": 2, "惊喜": 2, "放心": 1, "好用": 1.5,
    "贴心": 2, "热情": 1.5, "及时": 1, "完美": 2, "辛苦了": 1.5, "靠谱": 2,
}
NEGATIVE_ZH: Cues = {
    "不满": 2, "差": 1.5, "太慢": 2, "糟糕": 2, "失望": 2, "投诉": 2, "生气": 2, "愤怒": 2.5, "坏了": 1.5,
    "垃圾": 2.5, "差评": 2, "无语": 2, "气死": 2.5, "恶劣": 2.5, "骗": 2, "坑": 2, "烂": 2, "后悔": 2,
    "麻烦死": 2, "崩溃": 1.5, "无法": 1, "没人": 1.5, "着急": 1.5, "急死": 2, "离谱": 2, "过分": 2, "忍无可忍": 3,
    "受不了": 2, "敷衍": 2, "不负责": 2, "破损": 1.5, "退款": 0.5, "一直没": 1.5, "还没": 1, "没收到": 1.5,
    "不好": 1.5, "不行": 1.5, "怎么还": 1.5,
}
NEGATORS_ZH = (
    "不", "没", "没有", "别", "不太", "不是很", "并不", "一点也不", "一点都不",
)

# English sentiment comes from VADER; these add what VADER misses in support messages.
NEGATIVE_EN: Cues = {
    "still waiting": 2, "never arrived": 2, "hasn't arrived": 2, "not arrived": 2,
    "charged twice": 2, "double charged": 2, "not working": 1.5, "doesn't work": 1.5,
    "stopped working": 1.5, "no reply": 1.5, "no response": 1.5, "unacceptable": 2,
    "ridiculous": 2, "wrong item": 1.5, "broken": 1, "damaged": 1, "defective": 1.5,
    "not happy": 2.5, "not satisfied": 2.5, "unhappy": 2, "never again": 2, "waste of": 2,
    "fed up": 2, "sick of": 2, "can't log in": 1.5, "cannot log in": 1.5, "crashes": 1,
    "again": 0.5, "third time": 2, "still not": 1.5, "not received": 2,
}
NEGATED_POSITIVE_EN = (
    "not happy", "not satisfied", "not good", "not great", "not impressed", "not helpful",
    "not pleased",
)

# Outages, security and fraud, legal or public threats, safety.
URGENT = (
    "for everyone", "everyone", "all of us", "全国用户", "所有人", "安全隐患", "儿童安全", "不舒服", "中毒",
    "food poisoning", "got sick", "safety hazard",
    "宕机", "瘫痪", "全部无法", "所有用户", "大面积", "服务中断", "全线", "outage", "site is down",
    "service is down", "everything is down", "all users", "completely down", "system down",
    "被盗", "盗刷", "被黑", "盗号", "诈骗", "泄露", "hacked", "fraud", "unauthorized", "unauthorised",
    "stolen", "identity theft", "security breach", "data breach", "phishing", "律师", "起诉", "法院",
    "消协", "12315", "工商局", "市场监管", "曝光", "媒体", "报警", "维权", "lawyer", "attorney", "sue", "suing",
    "lawsuit", "legal action", "small claims", "trading standards", "report you to",
    "consumer protection", "起火", "冒烟", "爆炸", "触电", "受伤", "烫伤", "过敏", "fire", "smoke",
    "exploded", "electric shock", "injured", "injury", "burned", "choking",
    "allergic reaction", "冒火星", "火花", "烫到", "噎到", "卡喉咙", "choked", "a burn", "burnt",
    "sparks", "sparking", "caught fire",
    # the guide's §5 criteria, in more words: safety, fraud, regulators, hours-long deadlines
    "漏电", "鼓包", "危险", "变质", "吃坏", "swollen", "swelling", "dangerous", "leaking gas",
    "not me", "wasn't me", "didn't make", "never made", "did not make", "didn't authorize",
    "someone used my", "someone has been using", "someone is using", "不是我本人", "不是我买的",
    "不是我操作", "有人用我的", "chargeback", "拒付", "regulator", "bbb", "监管", "全公司", "所有门店",
    "none of our", "all our stores", "航班", "起飞", "flight", "手术", "surgery",
)
HIGH = (
    "几次", "次都", "好几天", "been trying", "zero replies", "emails", "times now",
    "尽快", "马上", "立刻", "立即", "赶紧", "急", "今天", "明天", "截止", "第三次", "第二次", "多次", "又一次", "再次",
    "一直没人", "好几次", "到现在", "加急", "asap", "urgent", "urgently", "immediately", "right away",
    "today", "tomorrow", "tonight", "deadline", "as soon as possible", "third time",
    "second time", "again", "several times", "multiple times", "still no", "emergency",
    "time-sensitive", "by friday", "by monday",
    # deadlines within days, and chasing
    "这周", "本周", "周末", "周五", "周一", "下周", "星期", "要用", "第四次", "催了", "this week",
    "by the weekend", "by tomorrow", "by tuesday", "by wednesday", "by thursday", "3rd time",
    "4th time", "chasing", "still waiting", "still haven't", "still hasn't", "need it for",
)

ENGLISH_STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been
before being below best between both but by can can't cannot cant could couldn't dear did
didn't do does doesn't doing don't dont down during each few for from further fw fwd get got
had hadn't has hasn't have haven't having he hello her here hers herself hey hi him himself
his how i i'd i'll i'm i've if im in into is isn't it it's its itself ive just let's like
madam me more most mustn't my myself need no nor not now of off ok okay on once one only or
other ought our ours ourselves out over own please pls re regards same shan't she should
shouldn't sir so some still such team than thank thanks that that's the their theirs them
themselves then there there's these they they'd they'll they're they've this those through to
too under until up very via want was wasn't we we'd we'll we're we've were weren't what what's
when when's where where's which while who who's whom why why's will with won't wont would
wouldn't yes yet you you'd you'll you're you've your yours yourself yourselves
""".split())

# Chinese function words that snownlp's stop list lacks but that say nothing as keywords.
CHINESE_STOPWORDS = frozenset("""
一下 一个 一样 一次 一直 不是 东西 为什么 什么 今天 他们 但是 你们 你好 可以 因为 如果 就是 已经 希望 应该 怎么 怎么办 您好 感谢 我们 我想 我要 所以 敬礼 时候
昨天 是不是 有没有 此致 没收 没有 然后 现在 知道 能不能 觉得 请问 谢谢 还是 还有 这个 这么 那个 那么 问题 需要 麻烦
""".split())
# fmt: on

# Words that name a need's action or object (docs/labelling-guide.md §3.4): findings the linear
# model's need-key head reads beside the n-grams.
# fmt: off
NEED_ACTION_CUES: dict[str, tuple[str, ...]] = {
    "refund": ("退款", "退钱", "退回", "补差价", "返还", "退货", "refund", "money back", "reverse the charge", "credit the difference"),
    "replace": ("换货", "换一个", "换新", "调换", "换个", "replace", "replacement", "exchange", "swap"),
    "resend": ("补发", "重发", "再寄", "漏发", "少发", "resend", "reship", "send the missing", "missing"),
    "repair": ("维修", "修一下", "返修", "保修", "repair"),
    "deliver": ("发货", "送到", "派送", "重新派送", "快点到", "没收到", "还没到", "没动", "ship", "deliver", "redeliver", "arrived", "not received"),
    "speed_up": ("加急", "快点回复", "提速", "快一点", "太慢", "没人回", "没人理", "排队", "expedite", "rush", "faster", "quicker", "no reply", "waiting"),
    "track": ("查一下", "到哪了", "进度", "状态", "物流信息", "track", "status", "where is", "check on"),
    "cancel": ("取消", "退订", "不要了", "关闭自动续费", "cancel", "stop my plan", "unsubscribe"),
    "change": ("改", "修改", "更换", "换绑", "change", "update", "edit", "switch", "upgrade", "downgrade"),
    "explain": ("是什么", "为什么", "多少", "有没有", "怎么用", "吗", "what", "why", "which", "how much", "do you", "is it", "does it"),
    "compensate": ("赔偿", "补偿", "赔", "compensation", "compensate", "make it up"),
    "fix": ("修复", "bug", "恢复正常", "闪退", "报错", "打不开", "崩溃", "fix", "error", "crash", "not working"),
    "restore_access": ("登不上", "登录不了", "解锁", "解封", "找回账号", "收不到验证码", "验证码", "unlock", "can't log in", "cannot log in", "recover my account", "locked"),
    "reset": ("重置密码", "忘记密码", "改密码", "reset", "forgot"),
    "secure": ("盗号", "盗刷", "被盗", "冻结", "异地登录", "hacked", "fraud", "freeze", "block my card", "unauthorized", "unauthorised"),
    "contact": ("回电", "联系我", "转人工", "找经理", "人工", "call me back", "speak to", "a human", "manager", "call back"),
    "issue": ("开发票", "开票", "专票", "收据", "重开", "发票", "invoice", "receipt"),
    "handle": ("处理", "给个说法", "调查", "投诉", "look into", "deal with", "investigate", "escalate", "complaint"),
    "apologize": ("道歉", "赔礼", "apology", "apologise", "apologize"),
    "improve": ("改进", "优化", "提升", "建议", "improve", "should add", "would be nice", "suggest"),
    "stop": ("别再发", "退订推送", "骚扰", "短信", "stop texting", "stop sending", "spam"),
    "delete": ("注销", "删除", "delete", "close my account", "erase"),
    "buy": ("下单", "预订", "想买", "代下单", "buy", "reserve", "pre-order", "purchase"),
}
NEED_OBJECT_CUES: dict[str, tuple[str, ...]] = {
    "order": ("订单", "单子", "这单", "order"),
    "package": ("包裹", "快递", "货", "物流", "parcel", "package", "shipment", "tracking"),
    "product": ("商品", "东西", "耳机", "配件", "产品", "item", "product", "charger", "size"),
    "payment": ("付款", "支付", "银行卡", "花呗", "信用卡", "payment", "pay", "card", "paypal"),
    "charge": ("扣费", "扣款", "多扣", "服务费", "差价", "扣了", "charge", "charged", "fee", "deduction", "difference"),
    "refund": ("退款进度", "退款到账", "refund status", "my refund"),
    "subscription": ("会员", "订阅", "自动续费", "套餐", "subscription", "membership", "plan", "renewal"),
    "account": ("账号", "账户", "积分", "会员等级", "手机号", "邮箱", "account", "profile", "points", "e-mail", "email"),
    "password": ("密码", "password", "pin"),
    "address": ("地址", "收货地址", "address", "postcode"),
    "invoice": ("发票", "专票", "收据", "invoice", "receipt"),
    "response": ("回复", "响应", "答复", "排队", "reply", "response", "wait time", "answer"),
    "agent": ("人工", "经理", "主管", "human", "agent", "manager", "supervisor"),
    "staff": ("态度", "店员", "快递员", "rude", "courier", "attitude", "staff"),
    "app": ("app", "网站", "小程序", "页面", "site", "website", "page", "checkout"),
    "coupon": ("优惠券", "红包", "券", "礼品卡", "coupon", "promo code", "voucher", "gift card"),
    "price": ("价格", "报价", "折扣", "满减", "活动", "多少钱", "price", "quote", "deal", "sale", "discount"),
    "delivery": ("运费", "配送范围", "几天到", "顺丰", "shipping", "delivery options", "ship to"),
    "policy": ("政策", "保修", "七天无理由", "policy", "warranty"),
    "store": ("门店", "营业时间", "电话多少", "store", "opening hours", "hours"),
    "service": ("服务", "售后", "客服", "service", "support"),
    "complaint": ("投诉", "虚假宣传", "complaint", "misleading"),
    "messages": ("短信", "推送", "广告电话", "texts", "newsletter", "notifications", "marketing"),
}
# fmt: on
