"""The console's two languages: the words of every page, and which language a reader gets.

A reader gets the language of the ``lang`` cookie (set by the language switch), else the first
of their browser's ``Accept-Language`` that the console speaks, else Chinese.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

# Each entry: (Chinese, English).
MESSAGES: Mapping[str, tuple[str, str]] = {
    "app.name": ("Kefu 客服控制台", "Kefu console"),
    "nav.skip": ("跳到主要内容", "Skip to main content"),
    "nav.overview": ("概览", "Overview"),
    "nav.needs": ("客户需求", "Needs"),
    "nav.followups": ("回访", "Follow-ups"),
    "nav.improvements": ("改进建议", "Improvements"),
    "nav.issue": ("查找问题", "Find an issue"),
    "nav.issue_id": ("问题编号", "Issue id"),
    "nav.go": ("打开", "Open"),
    "nav.language": ("语言", "Language"),
    "nav.signed_in_as": ("已登录：", "Signed in as "),
    "nav.sign_out": ("退出", "Sign out"),
    "login.title": ("登录", "Sign in"),
    "login.intro": (
        "请输入您的 API 密钥。密钥只保存在服务器端，浏览器只持有会话。",
        "Enter your API key. The key stays on the server; the browser only holds a session.",
    ),
    "login.api_key": ("API 密钥", "API key"),
    "login.submit": ("登录", "Sign in"),
    "login.unknown_key": ("密钥无效或已被吊销。", "The key is unknown or revoked."),
    "login.unavailable": (
        "暂时无法连接 Kefu 服务，请稍后再试。",
        "The Kefu services cannot be reached right now; try again shortly.",
    ),
    "login.expired": ("页面已过期，请重新提交。", "The form expired; please submit it again."),
    "period.label": ("时间段", "Period"),
    "period.days": ("最近 {n} 天", "Last {n} days"),
    "filter.apply": ("筛选", "Apply"),
    "filter.all": ("全部", "All"),
    "filter.channel": ("渠道", "Channel"),
    "filter.intent": ("意图", "Intent"),
    "filter.status": ("状态", "Status"),
    "filter.age": ("等待时长", "Waiting"),
    "filter.age_any": ("不限", "Any"),
    "filter.age_days": ("超过 {n} 天", "Over {n} days"),
    "overview.title": ("满意度概览", "Satisfaction overview"),
    "overview.csat": ("CSAT 满意率", "CSAT"),
    "overview.nps": ("NPS 净推荐值", "NPS"),
    "overview.ces": ("CES 平均费力度", "Average CES"),
    "overview.rated": ("已评价", "Rated"),
    "overview.verdicts": ("评价分布", "Verdicts"),
    "overview.answers": ("{n} 份回答", "{n} answers"),
    "overview.change": ("较上一时段", "vs previous period"),
    "overview.no_change": ("无可比数据", "nothing to compare"),
    "overview.trend": ("每日趋势", "Daily trend"),
    "overview.trend_csat": ("CSAT 满意率 (%)", "CSAT (%)"),
    "overview.trend_rated": ("已评价数", "Rated"),
    "overview.trend_table": ("每日数据", "Daily figures"),
    "overview.day": ("日期", "Day"),
    "overview.no_data": ("该时段没有评价。", "No ratings in this period."),
    "needs.title": ("客户需求", "Customer needs"),
    "needs.issues": ("该时段共 {n} 个问题", "{n} issues in this period"),
    "needs.top_needs": ("最常见的需求", "Top needs"),
    "needs.top_intents": ("意图分布", "Intents"),
    "needs.need": ("需求", "Need"),
    "needs.count": ("次数", "Count"),
    "needs.previous": ("上一时段", "Previous period"),
    "needs.examples": ("示例", "Examples"),
    "needs.none": ("该时段没有识别出需求。", "No needs were found in this period."),
    "followups.title": ("待回访客户", "Customers to call back"),
    "followups.customer": ("客户", "Customer"),
    "followups.contact": ("联系方式", "Contact"),
    "followups.hidden": ("无权查看", "hidden"),
    "followups.reason": ("原因", "Reason"),
    "followups.waiting": ("已等待", "Waiting"),
    "followups.actions": ("操作", "Actions"),
    "followups.none": ("没有符合条件的回访。", "No follow-ups match."),
    "followups.total": ("共 {n} 条", "{n} in all"),
    "followups.move_to": ("标记为{status}", "Mark {status}"),
    "improvements.title": ("改进建议", "Improvement proposals"),
    "improvements.theme": ("主题", "Theme"),
    "improvements.priority": ("优先级", "Priority"),
    "improvements.evidence": ("依据", "Evidence"),
    "improvements.issues": ("问题数", "Issues"),
    "improvements.dissatisfied_share": ("不满意占比", "Dissatisfied"),
    "improvements.trend": ("趋势", "Trend"),
    "improvements.samples": ("样例问题", "Sample issues"),
    "improvements.window": ("统计窗口", "Window"),
    "improvements.recommendation": ("建议", "Recommendation"),
    "improvements.none": ("暂无改进建议。", "No proposals."),
    "improvements.reasons": ("提出原因", "Why"),
    "action.failed": ("操作未完成：{detail}", "Not done: {detail}"),
    "action.done": ("已更新。", "Updated."),
    "issue.title": ("问题详情", "Issue"),
    "issue.timeline": ("处理时间线", "Timeline"),
    "issue.text": ("客户原话", "Customer's words"),
    "issue.not_found": ("找不到这个问题。", "No such issue."),
    "issue.invalid_id": ("问题编号格式不正确。", "That is not an issue id."),
    "issue.received": ("收到问题", "Received"),
    "issue.analysed": ("已分析", "Analysed"),
    "issue.feedback": ("客户反馈", "Feedback"),
    "issue.verdict": ("满意度判定", "Satisfaction verdict"),
    "issue.followup_opened": ("创建回访", "Follow-up opened"),
    "issue.followup_updated": ("回访更新", "Follow-up updated"),
    "issue.resolved": ("已解决", "Resolved"),
    "issue.not_analysed": ("尚未分析。", "Not analysed yet."),
    "issue.sentiment": ("情绪", "Sentiment"),
    "issue.urgency": ("紧急程度", "Urgency"),
    "issue.evidence": ("依据", "Evidence"),
    "issue.confidence": ("置信度", "confidence"),
    "issue.keywords": ("关键词", "Keywords"),
    "issue.rating": ("评分", "Rating"),
    "issue.comment": ("评论", "Comment"),
    "issue.basis": ("判定依据", "Basis"),
    "issue.by": ("处理人", "By"),
    "issue.hidden_parts": ("您的密钥无权查看：", "Your key may not see:"),
    "error.title": ("出错了", "Something went wrong"),
    "error.forbidden": (
        "您的密钥没有查看此页面的权限（需要 {scope}）。",
        "Your key may not see this page (it needs {scope}).",
    ),
    "error.unavailable": (
        "{service} 服务暂时不可用，请稍后再试。",
        "The {service} service is unavailable right now; try again shortly.",
    ),
    "error.invalid": ("参数 {field} 无效。", "The parameter {field} is not valid."),
    "error.not_found": ("页面不存在。", "No such page."),
    "error.csrf": (
        "请求缺少有效的安全令牌，请刷新页面后重试。",
        "The request lacks a valid security token; reload the page and try again.",
    ),
    "verdict.satisfied": ("满意", "satisfied"),
    "verdict.neutral": ("一般", "neutral"),
    "verdict.dissatisfied": ("不满意", "dissatisfied"),
    "status.open": ("待处理", "open"),
    "status.received": ("已收到", "received"),
    "status.contacted": ("已联系", "contacted"),
    "status.resolved": ("已解决", "resolved"),
    "status.dismissed": ("已忽略", "dismissed"),
    "status.accepted": ("已采纳", "accepted"),
    "status.in_progress": ("进行中", "in progress"),
    "status.done": ("已完成", "done"),
    "status.rejected": ("已拒绝", "rejected"),
    "move.contacted": ("已联系", "Contacted"),
    "move.resolved": ("已解决", "Resolved"),
    "move.dismissed": ("忽略", "Dismiss"),
    "move.open": ("重新打开", "Reopen"),
    "move.accepted": ("采纳", "Accept"),
    "move.in_progress": ("开始", "Start"),
    "move.done": ("完成", "Done"),
    "move.rejected": ("拒绝", "Reject"),
    "channel.email": ("邮件", "email"),
    "channel.phone": ("电话", "phone"),
    "channel.chat": ("在线聊天", "chat"),
    "channel.web": ("网页表单", "web"),
    "channel.social": ("社交媒体", "social"),
    "channel.sms": ("短信", "SMS"),
    "channel.other": ("其他", "other"),
    "channel.unknown": ("未知", "unknown"),
    "intent.refund": ("退款", "refund"),
    "intent.delivery": ("物流配送", "delivery"),
    "intent.billing": ("账单支付", "billing"),
    "intent.account": ("账户", "account"),
    "intent.product_quality": ("产品质量", "product quality"),
    "intent.technical": ("技术故障", "technical"),
    "intent.response_speed": ("响应速度", "response speed"),
    "intent.cancellation": ("取消", "cancellation"),
    "intent.complaint": ("投诉", "complaint"),
    "intent.praise": ("表扬", "praise"),
    "intent.feedback": ("满意度反馈", "feedback"),
    "intent.inquiry": ("咨询", "inquiry"),
    "intent.other": ("其他", "other"),
    "intent.unknown": ("未知", "unknown"),
    "sentiment.negative": ("负面", "negative"),
    "sentiment.neutral": ("中性", "neutral"),
    "sentiment.positive": ("正面", "positive"),
    "urgency.low": ("低", "low"),
    "urgency.normal": ("普通", "normal"),
    "urgency.high": ("高", "high"),
    "urgency.urgent": ("紧急", "urgent"),
    "part.issue": ("问题内容", "the issue"),
    "part.analysis": ("分析", "the analysis"),
    "part.satisfaction": ("满意度", "satisfaction"),
    "part.followups": ("回访", "follow-ups"),
    "page.previous": ("上一页", "Previous"),
    "page.next": ("下一页", "Next"),
    "page.label": ("分页", "Pages"),
}


def negotiate(accept_language: str | None, chosen: str | None = None) -> str:
    """The language a reader gets: ``chosen`` (the switch) if spoken here, else the first spoken
    language of ``Accept-Language`` by its q-values, else Chinese."""
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = tag.strip().lower().split("-")[0]
        if language in LANGUAGES and quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Translator:
    language: str

    def __call__(self, key: str, **values: object) -> str:
        zh, en = MESSAGES[key]
        text = zh if self.language == "zh" else en
        return text.format(**values) if values else text

    def label(self, kind: str, value: str | None) -> str:
        """The name of an enumerated value (``intent``, ``channel``, ``status``...); the value
        itself when the console does not know it (a newer service may add values)."""
        key = f"{kind}.{value if value is not None else 'unknown'}"
        return self(key) if key in MESSAGES else str(value)
